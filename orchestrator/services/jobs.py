"""Jobs: reading and listing them, cancelling, and recording what agents report (the
views commit).

Agents report through ``start_job``, ``record_output``, ``record_events`` (flows)
and ``record_result`` (see ``agent/protocol.py``); each checks the job is leased to the calling
agent and changes it with a conditional UPDATE, so a late, repeated or
foreign report can never overwrite a decided job: the first result wins.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import Conflict, NotFound, ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import agents, job_changes, job_steps, leases, lifecycle, rollout

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: The hub keeps at most this many characters of each stream (the agent caps bytes too).
MAX_OUTPUT_CHARS = 2 * 1024 * 1024
OPEN_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def get_job(job_id: str) -> Job:
    """The current tenant's job ``job_id``; 404 ``job_not_found`` otherwise."""
    job = db.session.execute(db.select(Job).where(Job.id == job_id)).scalar_one_or_none()
    if job is None:
        raise NotFound(f"No job '{job_id}'.", error_code="job_not_found",
                       details={"job_id": job_id})
    return job


def encode_cursor(job: Job) -> str:
    """An opaque cursor pointing just after ``job`` in (created_at desc, id desc) order."""
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor points after; 422 for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
        if not isinstance(job_id, str):
            raise TypeError(job_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationFailed("Invalid cursor.", details={"fields": {"cursor": [
            "Pass back a next_cursor exactly as a previous page returned it."]}}) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), job_id


def list_jobs(args: dict[str, Any]) -> dict[str, Any]:
    """A page of the tenant's jobs, newest first, filtered as ``args`` says.

    ``since`` is inclusive and ``until`` exclusive (both on ``created_at``).
    """
    query = db.select(Job)
    for field, column in (("agent", Job.agent_name), ("status", Job.status),
                          ("script", Job.script), ("fanout_id", Job.fanout_id),
                          ("pool", Job.pool)):
        if args.get(field):
            query = query.where(column == args[field])
    if args.get("since"):
        query = query.where(Job.created_at >= _aware(args["since"]))
    if args.get("until"):
        query = query.where(Job.created_at < _aware(args["until"]))
    if args.get("cursor"):
        created, job_id = decode_cursor(args["cursor"])
        query = query.where(sa.or_(Job.created_at < created,
                                   sa.and_(Job.created_at == created, Job.id < job_id)))
    limit = min(max(int(args.get("limit") or DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    rows = list(db.session.execute(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return {"jobs": page, "next_cursor": next_cursor}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _update(job_id: str, *conditions: Any, **values: Any) -> bool:
    """Conditional UPDATE of one job; True when it matched."""
    return db.session.execute(
        sa.update(Job).where(Job.id == job_id, *conditions).values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def cancel_job(job_id: str) -> tuple[Job, bool]:
    """Cancel a job; return it and whether it is already cancelled (else: kill requested).

    Pending jobs are cancelled at once; for a running job the request reaches
    its agent with the next heartbeat or output upload, and the agent reports
    ``cancelled``. A finished job answers 409 ``job_finished``.
    """
    job = get_job(job_id)
    now = utcnow()
    if lifecycle.finish_job(job, JobStatus.CANCELLED.value, Job.status == JobStatus.PENDING.value,
                            error=lifecycle.CANCELLED, cancel_requested_at=now):
        return job, True
    _update(job.id, Job.status == JobStatus.RUNNING.value, Job.cancel_requested_at.is_(None),
            cancel_requested_at=now)
    db.session.refresh(job)
    if job.status == JobStatus.RUNNING.value:
        return job, False
    raise Conflict(f"Job {job.id} already finished ({job.status}).", error_code="job_finished",
                   details={"job_id": job.id, "status": job.status})


def _leased_job(principal: Principal, job_id: str, agent_name: str) -> tuple[Any, Job]:
    """The calling agent and the job it reports on (409 unless leased to that agent)."""
    agent = agents.agent_for_caller(principal, agent_name)
    job = get_job(job_id)
    unleased = job.status == JobStatus.PENDING.value and job.lease_expires_at is None
    if job.agent_id != agent.id or unleased:
        raise Conflict(f"Job {job.id} is not leased to agent '{agent.name}'.",
                       error_code="job_not_leased", details={"job_id": job.id})
    return agent, job


def start_job(principal: Principal, job_id: str, agent_name: str) -> dict[str, str]:
    """The agent acknowledges it starts the job; 409 ``job_not_runnable`` if it must not."""
    agent = agents.agent_for_caller(principal, agent_name)
    now = utcnow()
    if lifecycle.start_job(job_id, Job.agent_id == agent.id, Job.lease_expires_at.is_not(None),
                           Job.cancel_requested_at.is_(None), started_at=now,
                           lease_expires_at=now + leases.running_lease(agent)):
        job_changes.changed(job_id)
        return {"status": JobStatus.RUNNING.value}
    job = get_job(job_id)
    if job.status == JobStatus.RUNNING.value and job.agent_id == agent.id:
        return {"status": JobStatus.RUNNING.value}  # a retried acknowledgement
    raise Conflict(f"Job {job.id} must not run ({job.status}).", error_code="job_not_runnable",
                   details={"job_id": job.id, "status": job.status})


def record_output(principal: Principal, job_id: str, data: dict[str, Any]) -> dict[str, bool]:
    """Append an output chunk (idempotent by offset), renew the lease; say whether to cancel."""
    agent, job = _leased_job(principal, job_id, data["agent_name"])
    if job.is_terminal:
        return {"cancel": True}  # the hub already decided (cancelled, agent_lost): stop it
    if job.status == JobStatus.RUNNING.value:
        for stream in ("stdout", "stderr"):
            if data.get(stream):
                _append(job, stream, data[stream]["offset"], data[stream]["data"])
        leases.renew_running_leases(agent, [job.id])
        job_changes.changed(job.id)
    return {"cancel": job.cancel_requested_at is not None}


def _append(job: Job, stream: str, offset: int, data: str) -> None:
    """Apply a chunk at character ``offset``: overlaps are skipped, gaps dropped."""
    current = getattr(job, stream) or ""
    if offset > len(current) or offset + len(data) <= len(current):
        return
    text = current + data[len(current) - offset:]
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS]
        job.truncated = {**(job.truncated or {}), stream: True}
    setattr(job, stream, text)


def record_events(principal: Principal, job_id: str, data: dict[str, Any]) -> dict[str, bool]:
    """Apply a flow job's step events (idempotent by ``seq``), renew the lease; say whether
    to cancel. 409 ``job_not_a_flow`` for a script job."""
    agent, job = _leased_job(principal, job_id, data["agent_name"])
    if job.is_terminal:
        return {"cancel": True}  # the hub already decided: stop it
    if job.kind != "flow":
        raise Conflict(f"Job {job.id} runs a script, not a flow.", error_code="job_not_a_flow",
                       details={"job_id": job.id})
    if job.status == JobStatus.RUNNING.value:
        job_steps.apply_events(job, data["events"])
        leases.renew_running_leases(agent, [job.id])
        job_changes.changed(job.id)
    return {"cancel": job.cancel_requested_at is not None}


def record_result(principal: Principal, job_id: str, data: dict[str, Any]) -> dict[str, str]:
    """Record the agent's final result; the first accepted result wins, repeats answer ok."""
    _agent, job = _leased_job(principal, job_id, data["agent_name"])
    if job.is_terminal:
        rollout.record_late_result(job, data)  # e.g. declared agent_lost, then it reported
        return {"status": "ok"}
    if data.get("events") and job.kind == "flow":
        job_steps.apply_events(job, data["events"])  # the steps not streamed yet
    now = utcnow()
    truncated = {s: bool((data.get("truncated") or {}).get(s)) for s in ("stdout", "stderr")}
    if (job.truncated or {}).get("steps"):
        truncated["steps"] = True
    stdout, stderr = data.get("stdout") or "", data.get("stderr") or ""
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if len(text) > MAX_OUTPUT_CHARS:
            truncated[stream] = True
    started = job.started_at or data.get("started_at") or now
    lifecycle.finish_job(job, data["status"], Job.agent_id == job.agent_id,
                            error=data.get("error"), exit_code=data.get("exit_code"),
                            stdout=stdout[:MAX_OUTPUT_CHARS], stderr=stderr[:MAX_OUTPUT_CHARS],
                            truncated=truncated, duration_ms=data.get("duration_ms"),
                            started_at=_aware(started), completed_at=now)
    return {"status": "ok"}
