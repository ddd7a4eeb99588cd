"""The job lifecycle: every status a job can take, every allowed move, and what follows.

::

    pending ──lease──▶ pending+leased ──start──▶ running ──result──▶ success, failed,
      │  ▲                  │                      │                timeout, cancelled
      │  └── start not acknowledged in time ───────┘
      │                                            ├─ silent past its lease ─▶ failed (agent_lost)
      ├─ cancel ─────────────▶ cancelled           └─ agent restarted ──────▶ failed
      ├─ queue_ttl passed ───▶ expired                                       (agent_restarted)
      └─ agent deregistered ─▶ cancelled (a running job: failed, agent_deregistered)

``TRANSITIONS`` is that diagram as data. ``finish_job`` is the one way a job
becomes terminal, whatever the cause (result, cancel, timeout, lost,
expired, deregistered): a conditional UPDATE from the statuses allowed to
move there (so the first finisher wins and a late report changes nothing),
then, in the same transaction, the ``job.*`` event and ``job.finished`` on
the outbox. Who reacts to ``job.finished`` (webhooks, fan-out progress,
synchronous waiters, queue withdrawal) is listed in ``orchestrator.subscribers``.

Services here flush; the caller (a view, a task, a periodic job) commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator.extensions import db
from orchestrator.ids import new_id
from orchestrator.models import Job, JobStatus, utcnow
from orchestrator.services import agent_queues, outbox
from orchestrator.services.events import record_event

PENDING, RUNNING = JobStatus.PENDING.value, JobStatus.RUNNING.value

#: status -> the statuses it may move to. Terminal statuses move nowhere.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMEOUT,
                        JobStatus.CANCELLED, JobStatus.EXPIRED}),
    RUNNING: frozenset({JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMEOUT,
                        JobStatus.CANCELLED}),
}

#: The event recorded (and sent to integrations) for each terminal status.
STATUS_EVENTS = {
    JobStatus.SUCCESS.value: "job.succeeded",
    JobStatus.FAILED.value: "job.failed",
    JobStatus.TIMEOUT.value: "job.timeout",
    JobStatus.CANCELLED.value: "job.cancelled",
    JobStatus.EXPIRED.value: "job.expired",
}

JOB_FINISHED = "job.finished"
JOBS_QUEUED = "jobs.queued"

#: Errors the hub itself sets when it ends a job (the agent's own are free text).
AGENT_LOST = "agent_lost"
AGENT_RESTARTED = "agent_restarted"
AGENT_DEREGISTERED = "agent_deregistered"
CANCELLED = "cancelled"
EXPIRED = "expired: not started within its queue_ttl"


def sources(target: str) -> tuple[str, ...]:
    """The statuses a job may be in to move to ``target``."""
    return tuple(status for status, targets in TRANSITIONS.items() if target in targets)


def may_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def start_job(job_id: str, *conditions: Any, **values: Any) -> bool:
    """pending (leased) -> running, if ``conditions`` still hold. The caller commits."""
    return _move(job_id, RUNNING, conditions, values)


def finish_job(job: Job, status: str, *conditions: Any, error: str | None = None,
               **values: Any) -> bool:
    """End ``job`` as ``status`` if it may still move there and ``conditions`` hold.

    On success the row is refreshed, the ``job.*`` event recorded and
    ``job.finished`` emitted, all in the caller's transaction.

    :returns: whether this call finished the job (False: someone else did first).
    """
    if status not in STATUS_EVENTS:
        raise ValueError(f"{status!r} is not a terminal job status")
    was_queued = job.status == PENDING and not job.held
    values = {"completed_at": utcnow(), "lease_expires_at": None, "error": error, **values}
    if not _move(job.id, status, conditions, values):
        return False
    db.session.refresh(job)
    announce_finished(job, queued=was_queued)
    return True


def finish_jobs(jobs: Iterable[Job], status: str, *conditions: Any, error: str | None = None,
                **values: Any) -> list[Job]:
    """``finish_job`` for each of ``jobs``; returns those this call finished."""
    return [job for job in jobs if finish_job(job, status, *conditions, error=error, **values)]


def _move(job_id: str, target: str, conditions: tuple[Any, ...], values: dict[str, Any]) -> bool:
    """One Core UPDATE (the callers loaded the job through the tenant filter, or hold it
    by its agent): Core skips the ORM's per-statement bookkeeping on the hot path."""
    table = Job.__table__
    return db.session.execute(
        table.update().where(table.c.id == job_id, table.c.status.in_(sources(target)),
                             *conditions).values(status=target, **values)
    ).rowcount == 1


def announce_finished(job: Job, *, queued: bool) -> None:
    """Record the job's terminal event and emit ``job.finished`` (``finish_job`` does this)."""
    payload = finished_payload(job, queued=queued)
    record_event(job.tenant_id, STATUS_EVENTS[job.status], subject=job.id, payload={
        key: payload[key] for key in ("job_id", "agent", "script", "status", "exit_code",
                                      "schedule_id")})
    outbox.emit(JOB_FINISHED, payload)


def finished_payload(job: Job, *, queued: bool) -> dict[str, Any]:
    """What ``job.finished`` subscribers receive: small, and enough to act without a read.

    :param queued: the job may still sit on its Redis queue (it was pending, not held).
    """
    return {"job_id": job.id, "tenant_id": job.tenant_id, "agent": job.agent_name,
            "script": job.script, "kind": job.kind, "status": job.status,
            "exit_code": job.exit_code, "error": job.error, "schedule_id": job.schedule_id,
            "fanout_id": job.fanout_id, "fanout_stage": job.fanout_stage,
            "has_webhook": bool(job.webhook_url), "idempotency_key": job.idempotency_key,
            "queue": agent_queues.job_queue_name(job) if queued else None}


def queue_jobs(jobs: Iterable[Job]) -> None:
    """Have ``jobs`` (added to this transaction) pushed to their agents' queues after it
    commits. The pending row is its own durable record: a push that never happens is
    repaired by ``leases.reconcile_lost_jobs``."""
    jobs = list(jobs)
    for job in jobs:
        job.id = job.id or new_id("job")  # a new row has no id before its flush
    entries = [agent_queues.entry(job) for job in jobs]
    if entries:
        outbox.emit(JOBS_QUEUED, {"jobs": entries})
