"""Recording events (agent.online, job.failed, fanout.completed, ...).

Events are rows in ``events``; notification delivery (integrations) reads
them. Callers record inside their own transaction, so an event exists exactly
when the change that caused it was committed, and so does its outbox row.
"""

from __future__ import annotations

from typing import Any

from orchestrator.extensions import db
from orchestrator.ids import new_id
from orchestrator.models import Event
from orchestrator.services import outbox

EVENT_RECORDED = "event.recorded"

#: Every event type the hub emits.
EVENT_TYPES = (
    "job.succeeded", "job.failed", "job.timeout", "job.cancelled", "job.expired",
    "agent.online", "agent.offline", "schedule.missed", "fanout.completed",
    "schedule.recovered", "job.recovered", "fanout.awaiting_approval",
)


def record_event(tenant_id: str, type_: str, subject: str | None = None,
                 payload: dict[str, Any] | None = None) -> Event:
    """Add an event to the session and emit ``event.recorded`` (the caller commits)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    event = Event(id=new_id("event"), tenant_id=tenant_id, type=type_, subject=subject,
                  payload=payload or {})
    db.session.add(event)
    outbox.emit(EVENT_RECORDED, {"event_id": event.id, "tenant_id": tenant_id, "type": type_})
    return event
