"""Flow job steps: apply the events an agent streams to the job's ``job_steps`` rows.

Events come from the flow engine on the agent (``agent/flows/events.py``) and
carry only what may leave it: outputs named in ``output:``, assertion
outcomes, durations and errors. They are applied idempotently: a step's row
remembers the last event ``seq`` applied to it, so a repeated upload (or the
events repeated in a flow's result) changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Job, JobStep, StepStatus

log = logging.getLogger(__name__)

#: A job keeps at most this many steps (a long for_each); later ones are counted as
#: ``truncated.steps``.
MAX_STEPS_PER_JOB = 2000
#: A step's ``outputs`` above this size (as JSON) are replaced by a note.
MAX_OUTPUTS_CHARS = 64 * 1024
MAX_ERROR_CHARS = 10000
STEP_EVENTS = ("step_started", "step_completed", "step_failed", "step_skipped")
_ITEM_SUFFIX = re.compile(r"\[\d+\]$")


def parent_of(step_id: str) -> str | None:
    """The enclosing step of a qualified id: ``loop[2].inner`` -> ``loop``; top level: None."""
    head, sep, _ = step_id.rpartition(".")
    return _ITEM_SUFFIX.sub("", head) if sep else None


def job_steps(job_id: str) -> list[JobStep]:
    """The job's steps in the order they started."""
    return list(db.session.execute(
        db.select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.seq)).scalars())


def apply_events(job: Job, events: Iterable[dict[str, Any]]) -> int:
    """Apply step events to ``job``'s steps (flush, no commit); return how many changed a row.

    The job row is locked first (``FOR UPDATE``; SQLite serialises writers), so a
    retried upload still running on another worker cannot insert the same step.
    """
    events = sorted((e for e in events if e.get("type") in STEP_EVENTS and e.get("id")),
                    key=lambda e: e["seq"])
    if not events:
        return 0
    db.session.execute(sa.select(Job.id).where(Job.id == job.id).with_for_update())
    return _apply(job, events)


def _apply(job: Job, events: list[dict[str, Any]]) -> int:
    rows = {step.step_id: step for step in job_steps(job.id)}
    changed = 0
    for event in events:
        row = rows.get(event["id"])
        if row is not None and event["seq"] <= row.last_seq:
            continue  # already applied
        if row is None:
            if len(rows) >= MAX_STEPS_PER_JOB:
                job.truncated = {**(job.truncated or {}), "steps": True}
                continue
            row = rows[event["id"]] = _new_step(job, event)
            db.session.add(row)
        _update_step(row, event)
        changed += 1
    db.session.flush()
    return changed


def _new_step(job: Job, event: dict[str, Any]) -> JobStep:
    return JobStep(tenant_id=job.tenant_id, job_id=job.id, step_id=event["id"],
                   parent=parent_of(event["id"]), name=event.get("name"),
                   action=event.get("action") or "unknown", status=StepStatus.RUNNING,
                   started_at=event.get("started_at"), assertions=[], outputs={},
                   seq=event["seq"], last_seq=event["seq"])


def _update_step(row: JobStep, event: dict[str, Any]) -> None:
    """Copy what the event says about the step onto its row."""
    row.last_seq = event["seq"]
    if event.get("started_at") and row.started_at is None:
        row.started_at = event["started_at"]
    if event["type"] == "step_started":
        return
    row.status = event.get("status") or (
        StepStatus.SKIPPED if event["type"] == "step_skipped" else
        StepStatus.FAILED if event["type"] == "step_failed" else StepStatus.PASSED)
    row.duration_ms = event.get("duration_ms")
    row.attempts = event.get("attempts")
    row.assertions = _capped_assertions(list(event.get("assertions") or []))
    error = event.get("error")
    row.error = error[:MAX_ERROR_CHARS] if isinstance(error, str) else None
    row.outputs = _capped_outputs(event.get("outputs") or {})
    row.reason = event.get("reason")


def _capped_assertions(assertions: list[Any]) -> list[Any]:
    """Assertions are capped like outputs: above the size a note replaces them."""
    size = len(json.dumps(assertions, default=str))
    if size <= MAX_OUTPUTS_CHARS:
        return assertions
    return [{"_truncated": f"assertions of {size} characters exceed {MAX_OUTPUTS_CHARS}"}]


def _capped_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(outputs, default=str))
    if size <= MAX_OUTPUTS_CHARS:
        return dict(outputs)
    return {"_truncated": f"outputs of {size} characters exceed {MAX_OUTPUTS_CHARS}"}
