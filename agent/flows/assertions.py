"""Assertions: evaluate expressions, record outcomes, explain failures without leaking data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.flows.errors import AssertionsFailed, ExpressionError
from agent.flows.events import plain
from agent.flows.expressions import evaluate

MAX_ACTUAL_CHARS = 200


def check_assertions(
    expressions: list[str], names: Mapping[str, Any], outcomes: list[dict[str, Any]],
    report_values: bool,
) -> None:
    """Evaluate every expression, append ``{expression, passed, actual?, error?}`` to
    ``outcomes``, and raise :class:`AssertionsFailed` if any is false.

    ``actual`` (the value of each name the expression read) is recorded, and shown in
    the message, only when ``report_values`` is set: values may be response data.
    """
    failed = []
    for expression in expressions:
        used: dict[str, Any] = {}
        record: dict[str, Any] = {"expression": expression}
        try:
            record["passed"] = bool(evaluate(expression, names, used))
        except ExpressionError as exc:
            record.update(passed=False, error=str(exc))
        if report_values:
            record["actual"] = plain(used)
        outcomes.append(record)
        if not record["passed"]:
            failed.append(record)
    if failed:
        raise AssertionsFailed("; ".join(describe_failure(r) for r in failed), outcomes)


def describe_failure(record: Mapping[str, Any]) -> str:
    """``assertion failed: EXPR`` plus the error, or the actual values when they may be shown."""
    text = f"assertion failed: {record['expression']}"
    if "error" in record:
        return f"{text} ({record['error']})"
    if record.get("actual"):
        shown = ", ".join(f"{name} = {json.dumps(value)[:MAX_ACTUAL_CHARS]}"
                          for name, value in record["actual"].items())
        return f"{text} (actual: {shown})"
    return text
