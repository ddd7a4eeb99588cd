"""Rendering helpers shared by the dashboard's views: pages, error messages, paging, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from orchestrator.dashboard import bp
from orchestrator.errors import ScriptMeshError
from orchestrator.models import utcnow

#: Statuses as the pages show them, with the badge class each gets.
BADGES = {"online": "ok", "success": "ok", "passed": "ok", "active": "ok", "ok": "ok",
          "fired": "ok", "manual": "ok", "succeeded": "ok",
          "running": "run", "pending": "wait", "draining": "warn", "waiting": "wait",
          "offline": "off", "cancelled": "off", "skipped": "off", "disabled": "off",
          "coalesced": "off", "paused": "off", "revoked": "off",
          "failed": "bad", "timeout": "bad", "expired": "bad", "error": "bad", "missed": "bad"}


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(f"dashboard/{template}", **context), status


def message_of(exc: Exception) -> str:
    """A one-paragraph reason for a failed action: the API's message and its field details."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                         for field, msgs in _flat(exc.messages).items())
    text = getattr(exc, "description", None) or str(exc)
    fields = (getattr(exc, "details", None) or {}).get("fields")
    if isinstance(fields, dict) and fields:
        text += " (" + "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                 for k, v in fields.items()) + ")"
    return text


def _flat(messages: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(messages, dict):
        return {prefix or "input": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flat(value, name) if isinstance(value, dict) else {name: value})
    return flat


def flash_error(exc: Exception) -> None:
    flash(message_of(exc), "error")


def query_args(*names: str) -> dict[str, str]:
    """The non-empty query parameters among ``names`` (empty filter boxes mean no filter)."""
    return {n: request.args[n].strip() for n in names if request.args.get(n, "").strip()}


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago`` (or ``never``)."""
    if moment is None:
        return "never"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = int(((now or utcnow()) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{seconds // size} {unit}"
            break
    else:
        text = f"{seconds} s"
    return f"in {text}" if future else f"{text} ago"


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("badge")
def badge_class(status: str | None) -> str:
    return BADGES.get(status or "", "off")


bp.add_app_template_filter(ago, "ago")
bp.add_app_template_filter(iso, "iso")


@bp.errorhandler(HTTPException)
def render_error(exc: HTTPException) -> tuple[str, int]:
    """Errors on a page are pages too (the API's JSON shape stays the API's)."""
    code = exc.code or 500
    error_code = exc.error_code if isinstance(exc, ScriptMeshError) else exc.name
    return page("error.html", code, code=code, error_code=error_code, message=message_of(exc))
