"""Utility steps: ``assert`` (standalone), ``transform`` (build values) and ``log``."""

from __future__ import annotations

from typing import Any

from agent.flows.context import ActionContext, ActionSpec
from agent.flows.errors import ExpressionError, StepFailed
from agent.flows.expressions import evaluate

LOG_LEVELS = ("debug", "info", "warning", "error")

ASSERT_SCHEMA = {
    "required": ["expressions"],
    "properties": {"expressions": {"type": "array", "minItems": 1,
                                   "items": {"type": "string", "minLength": 1}}},
}
TRANSFORM_SCHEMA = {
    "anyOf": [{"required": ["value"]}, {"required": ["expressions"]}],
    "properties": {"expressions": {"type": "object", "additionalProperties": {"type": "string"}}},
}
LOG_SCHEMA = {
    "required": ["message"],
    "properties": {"level": {"enum": list(LOG_LEVELS)}},
}


def assert_action(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Check ``expressions`` against the flow's variables, outputs and step results."""
    ctx.check_assertions(list(config["expressions"]))
    return {"passed": len(config["expressions"])}


def transform(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Build a result: ``value`` (interpolated, types kept) plus one field per expression."""
    result: dict[str, Any] = {}
    if "value" in config:
        result["value"] = config["value"]
    for name, expression in (config.get("expressions") or {}).items():
        try:
            result[name] = evaluate(expression, ctx.names())
        except ExpressionError as exc:
            raise StepFailed(f"transform {name!r}: {exc}") from None
    return result


def log_action(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Write ``message`` to the job's output at ``level``."""
    level = str(config.get("level", "info")).lower()
    ctx.log(str(config["message"]), level)
    return {"level": level}


ACTIONS = {
    "assert": ActionSpec(assert_action, frozenset({"expressions"}), ASSERT_SCHEMA,
                         ("expressions",)),
    "transform": ActionSpec(transform, frozenset({"expressions"}), TRANSFORM_SCHEMA,
                            ("expressions",)),
    "log": ActionSpec(log_action, config_schema=LOG_SCHEMA),
}
