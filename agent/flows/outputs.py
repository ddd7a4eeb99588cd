"""Named outputs: pick values out of a step's result, the way TestMesh does; never fails.

An ``output:`` path is tried, in order, as

1. JSONPath (``$.id``, ``$.data.items[0].id``, via ``jsonpath-ng``) over the HTTP body,
   then over the whole result;
2. a dot path over the result (``body.id``, ``first_row.total``), where a leading
   ``<own step id>.`` is dropped (``register.body.id`` in step ``register``);
3. an expression over the result and the flow's names (``len(body.items)``).

A path that finds nothing yields nil and a note (for the step's ``output_warnings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from agent.flows.errors import ExpressionError, FlowError
from agent.flows.expressions import compile_expression, evaluate
from agent.flows.interpolate import parse_reference, walk

_NOT_FOUND = object()


@lru_cache(maxsize=256)
def compile_jsonpath(path: str) -> Any:
    """Parse a JSONPath once (cached).

    :raises ExpressionError: when ``path`` is not valid JSONPath.
    """
    try:
        return parse_jsonpath(path)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ExpressionError(f"invalid JSONPath {path!r}: {reason}") from None


def check_output_path(path: str) -> None:
    """Raise :class:`ExpressionError` for a path that can never be read (load time)."""
    if path.strip().startswith("$"):
        compile_jsonpath(path.strip())
        return
    try:
        parse_reference(path.strip())  # a dot path such as ``body.user-id``
    except FlowError:
        compile_expression(path)


def _jsonpath(path: str, result: Any) -> Any:
    expression = compile_jsonpath(path)
    body = result.get("body") if isinstance(result, Mapping) else None
    for document in ([body] if body is not None else []) + [result]:
        matches = expression.find(document)
        if matches:
            return matches[0].value if len(matches) == 1 else [m.value for m in matches]
    return _NOT_FOUND


def _dot_path(path: str, result: Any, step_id: str) -> Any:
    try:
        parts = parse_reference(path)
    except FlowError:
        return _NOT_FOUND
    if parts[0] == step_id and len(parts) > 1:
        parts = parts[1:]
    if not isinstance(result, Mapping) or str(parts[0]) not in result:
        return _NOT_FOUND
    try:
        return walk(result[str(parts[0])], parts, path)
    except FlowError:
        return _NOT_FOUND


def extract_output(path: str, result: Any, step_id: str,
                   names: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Return ``(value, note)``: the value at ``path`` (nil when nothing matched)."""
    path = path.strip()
    try:
        if path.startswith("$"):
            value = _jsonpath(path, result)
        else:
            value = _dot_path(path, result, step_id)
            if value is _NOT_FOUND:
                value = evaluate(path, names)
    except ExpressionError as exc:
        return None, str(exc)
    if value is _NOT_FOUND:
        return None, f"{path!r} matched nothing"
    return value, None
