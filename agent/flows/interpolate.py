"""``${...}`` references in step configs: variables, step results and the agent's environment.

* ``${name}`` - a flow variable (flow ``env`` or trigger variables) or a named output;
* ``${step_id.path.to[0].value}`` - a field of an earlier step's result;
* ``${env.NAME}`` - the agent's own environment (secrets stay on the agent);
* TestMesh's built-ins ``${RANDOM_ID}``, ``${UUID}`` (a new UUID4 each time),
  ``${TIMESTAMP}`` (Unix seconds), ``${ISO_TIMESTAMP}``, ``${DATE}``, ``${TIME}``,
  ``${DATETIME}`` (UTC), unless a variable of that name exists;
* ``{{NAME}}`` is the same as ``${NAME}`` (TestMesh's other form).

A string that is exactly one reference keeps the referenced value's type; references
embedded in longer text are rendered as text. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from agent.flows.errors import InterpolationError

MISSING = object()
#: The names key under which expressions find the agent environment for ``${env.X}``.
OS_ENV_KEY = "$env"
_REFERENCE_RE = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\{\{\s*([A-Za-z_][\w.\[\]]*)\s*\}\}")
_WHOLE_RE = re.compile(r"^(?:\$\{([^{}]*)\}|\{\{\s*([A-Za-z_][\w.\[\]]*)\s*\}\})$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


BUILTINS: dict[str, Callable[[], str]] = {
    "RANDOM_ID": lambda: str(uuid.uuid4()),
    "UUID": lambda: str(uuid.uuid4()),
    "TIMESTAMP": lambda: str(int(_now().timestamp())),
    "ISO_TIMESTAMP": lambda: _now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    "DATE": lambda: _now().strftime("%Y-%m-%d"),
    "TIME": lambda: _now().strftime("%H:%M:%S"),
    "DATETIME": lambda: _now().strftime("%Y-%m-%d %H:%M:%S"),
}
_HEAD_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_SEGMENT_RE = re.compile(r"\.([A-Za-z0-9_\-]+)|\[\s*(-?\d+)\s*\]|\[\s*([\"'])(.*?)\3\s*\]")

Lookup = Callable[[str], Any]


def parse_reference(reference: str) -> list[str | int]:
    """Split ``a.b[0]["c"]`` into ``["a", "b", 0, "c"]``.

    :raises InterpolationError: when the text is not a reference path.
    """
    head = _HEAD_RE.match(reference)
    if not head:
        raise InterpolationError(f"invalid reference ${{{reference}}}")
    parts: list[str | int] = [head.group(1)]
    pos = head.end()
    while pos < len(reference.rstrip()):
        match = _SEGMENT_RE.match(reference, pos)
        if not match:
            raise InterpolationError(f"invalid reference ${{{reference}}}")
        name, index, _, key = match.groups()
        parts.append(name if name is not None else int(index) if index is not None else key)
        pos = match.end()
    return parts


def render_path(parts: list[str | int]) -> str:
    """``["a", "b", 0]`` -> ``a.b[0]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def walk(value: Any, parts: list[str | int], reference: str) -> Any:
    """Follow ``parts[1:]`` into ``value``; a missing key or index is an error naming the path."""
    for depth, part in enumerate(parts[1:], start=2):
        if isinstance(value, Mapping) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, list | tuple) and _is_index(part, value):
            value = value[int(part)]
        else:
            shown = render_path(parts[:depth])
            raise InterpolationError(f"unknown reference ${{{reference}}}: {shown!r} not found")
    return value


def _is_index(part: str | int, value: list | tuple) -> bool:
    if isinstance(part, str) and not part.lstrip("-").isdigit():
        return False
    return -len(value) <= int(part) < len(value)


def resolve(reference: str, lookup: Lookup, os_env: Mapping[str, str]) -> Any:
    """Return the value ``${reference}`` stands for.

    :param lookup: returns the variable, output or step result called ``name``, or
        :data:`MISSING`.
    """
    parts = parse_reference(reference)
    head = str(parts[0])
    if head == "env" and len(parts) == 2:
        value = os_env.get(str(parts[1]))
        if value is None:
            raise InterpolationError(
                f"unknown reference ${{{reference}}}: environment variable {parts[1]} is not set"
            )
        return value
    value = lookup(head)
    if value is MISSING and head in BUILTINS and len(parts) == 1:
        return BUILTINS[head]()
    if value is MISSING:
        raise InterpolationError(
            f"unknown reference ${{{reference}}}: no variable, output or step named {head!r}"
        )
    return walk(value, parts, reference)


def as_text(value: Any) -> str:
    """Render a value embedded in a string: JSON for lists and maps, ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _group(match: re.Match[str]) -> str:
    return match.group(1) if match.group(1) is not None else match.group(2)


def interpolate(value: Any, lookup: Lookup, os_env: Mapping[str, str]) -> Any:
    """Return ``value`` with every ``${...}`` in its strings resolved (recursively)."""
    if isinstance(value, str):
        whole = _WHOLE_RE.match(value)
        if whole:
            return resolve(_group(whole), lookup, os_env)

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            return as_text(resolve(_group(match), lookup, os_env))

        return _REFERENCE_RE.sub(replace, value)
    if isinstance(value, Mapping):
        return {key: interpolate(item, lookup, os_env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, lookup, os_env) for item in value]
    return value
