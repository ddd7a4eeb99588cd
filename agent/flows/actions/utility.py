"""Utility steps: ``assert`` (standalone), ``transform`` (build values) and ``log``.

``assert`` and ``transform`` also take TestMesh's forms: ``{data, assertions}``
(assertions evaluated against ``data``) and ``{input, transforms}`` (``$``-paths are
JSONPath into ``input``, anything else a literal value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.flows.context import ActionContext, ActionSpec
from agent.flows.errors import ExpressionError, StepFailed
from agent.flows.expressions import evaluate
from agent.flows.outputs import extract_output

LOG_LEVELS = ("debug", "info", "warning", "error")

EXPRESSION_LIST = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
ASSERT_SCHEMA = {
    "oneOf": [{"required": ["expressions"]}, {"required": ["assertions"]}],
    "properties": {"expressions": EXPRESSION_LIST, "assertions": EXPRESSION_LIST, "data": {}},
}
TRANSFORM_SCHEMA = {
    "anyOf": [{"required": ["value"]}, {"required": ["expressions"]},
              {"required": ["transforms"]}],
    "properties": {"value": {},
                   "expressions": {"type": "object", "additionalProperties": {"type": "string"}},
                   "input": {}, "transforms": {"type": "object"}},
}
LOG_SCHEMA = {
    "required": ["message"],
    "properties": {"message": {}, "level": {"enum": [*LOG_LEVELS, "warn"]}},
}


def assert_action(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Check ``expressions`` (or ``assertions``) against ``data`` and the flow's names.

    ``data`` (interpolated; a non-map is reachable as ``value``) comes first, then the
    flow's variables, outputs and step results.
    """
    expressions = list(config.get("expressions") or config.get("assertions") or [])
    data = config.get("data")
    if data is not None and not isinstance(data, Mapping):
        data = {"value": data}
    ctx.check_assertions(expressions, data)
    return {"passed": True, "assertions_count": len(expressions)}


def transform(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Build a result: ``value`` (interpolated, types kept) plus one field per expression."""
    result: dict[str, Any] = {}
    if "value" in config:
        result["value"] = config["value"]
    for name, path in (config.get("transforms") or {}).items():
        if isinstance(path, str) and path.startswith("$"):
            result[name], _ = extract_output(path, {"body": config.get("input")}, "", {})
        else:
            result[name] = path
    for name, expression in (config.get("expressions") or {}).items():
        try:
            result[name] = evaluate(expression, ctx.names())
        except ExpressionError as exc:
            raise StepFailed(f"transform {name!r}: {exc}") from None
    return result


def log_action(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Write ``message`` to the job's output at ``level``."""
    level = str(config.get("level", "info")).lower()
    level = "warning" if level == "warn" else level
    ctx.log(str(config["message"]), level)
    return {"level": level}


ACTIONS = {
    "assert": ActionSpec(
        assert_action, frozenset({"expressions", "assertions"}), ASSERT_SCHEMA,
        ("expressions", "assertions"), result_keys=("passed", "assertions_count"),
        example={"data": {"status": "${register.status}"},
                 "assertions": ["status == '201'"]}),
    "transform": ActionSpec(
        transform, frozenset({"expressions"}), TRANSFORM_SCHEMA,
        ("expressions",), result_keys=("value", "<each expressions / transforms key>"),
        example={"input": "${fetch.body}", "transforms": {"first_id": "$.items[0].id"},
                 "expressions": {"count": "len(fetch.body.items)"}}),
    "log": ActionSpec(log_action, config_schema=LOG_SCHEMA, result_keys=("level",),
                      example={"message": "created ${register.body.id}", "level": "info"}),
}
