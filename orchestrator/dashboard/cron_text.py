"""A cron expression in words (cron-descriptor) and its next fire times (the hub's own parser)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cron_descriptor import ExpressionDescriptor, Options

from orchestrator.errors import ValidationFailed
from orchestrator.models import utcnow
from orchestrator.services.scheduling import compile_schedule

PREVIEW_FIRES = 5


def describe_cron(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = True
    try:
        return ExpressionDescriptor(expression, options).get_description()
    except Exception:  # noqa: BLE001 - words are a courtesy; the hub's parser is the judge
        return ""


def next_fires(expression: str, timezone: str, count: int = PREVIEW_FIRES,
               after: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times, as the scheduler computes them (UTC)."""
    schedule = compile_schedule(expression, timezone or "UTC")
    moment, fires = after or utcnow(), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        fires.append(moment)
    return fires


def cron_preview(expression: str, timezone: str) -> dict[str, Any]:
    """``{ok, description, next: [ISO...], local: [...], error}`` for the create form."""
    try:
        fires = next_fires(expression, timezone)
    except ValidationFailed as exc:
        return {"ok": False, "description": "", "next": [], "local": [],
                "error": exc.description}
    zone = compile_schedule(expression, timezone or "UTC").timezone
    return {"ok": True, "description": describe_cron(expression), "error": None,
            "next": [f.isoformat().replace("+00:00", "Z") for f in fires],
            "local": [f.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for f in fires]}
