"""Utility steps: ``assert`` (standalone), ``transform`` (build values) and ``log``.

``assert`` and ``transform`` also take TestMesh's forms: ``{data, assertions}``
(assertions evaluated against ``data``) and ``{input, transforms}`` (``$``-paths are
JSONPath into ``input``, anything else a literal value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.flows.context import ActionContext, ActionSpec
from agent.flows.errors import ExpressionError, StepFailed
from agent.flows.expressions import evaluate
from agent.flows.outputs import extract_output

LOG_LEVELS = ("debug", "info", "warning", "error")

EXPRESSION_LIST = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
ASSERT_SCHEMA = {
    "oneOf": [{"required": ["expressions"]}, {"required": ["assertions"]},
              {"required": ["expression"]}],
    "properties": {"expressions": EXPRESSION_LIST, "assertions": EXPRESSION_LIST,
                   "expression": {"type": "string", "minLength": 1}, "data": {}},
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
    "properties": {"message": {}, "level": {"enum": [*LOG_LEVELS, "warn"]}, "data": {}},
}


def assert_action(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Check ``expressions`` (or ``assertions``) against ``data`` and the flow's names.

    ``data`` (interpolated; a non-map is reachable as ``value``) comes first, then the
    flow's variables, outputs and step results.
    """
    expressions = list(config.get("expressions") or config.get("assertions") or
                       [config["expression"]])
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
    """Write ``message`` (and ``data``, as JSON) to the job's output at ``level``.

    Like ``message``, ``data`` is text the flow author chose to publish: it leaves the
    agent in the job's output.
    """
    level = str(config.get("level", "info")).lower()
    level = "warning" if level == "warn" else level
    data = config.get("data")
    suffix = f" {json.dumps(data, default=str, sort_keys=True)}" if data is not None else ""
    ctx.log(f"{config['message']}{suffix}", level)
    return {"level": level}


ACTIONS = {
    "assert": ActionSpec(
        assert_action, frozenset({"expressions", "assertions", "expression"}), ASSERT_SCHEMA,
        ("expressions", "assertions", "expression"), result_keys=("passed", "assertions_count"),
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
