"""Leases: who may run a job until when, renewal by heartbeats, and the reaper.

A leased job is ``pending`` with ``lease_expires_at`` set (handed to an agent,
start not acknowledged yet; the lease is LEASE_SECONDS) or ``running`` (the
lease is the agent's liveness window, at least LEASE_SECONDS, renewed by
every heartbeat and output upload, so a quiet long script is never lost).

The maintenance functions below fix what leases and Redis leave behind. Each
change is a conditional UPDATE re-checking the state it read, so two
processes running them at once change every job exactly once.

- ``requeue_unacknowledged``: leased, never started -> back to the queue.
- ``fail_lost_jobs``: running past the lease -> ``failed``, error ``agent_lost``
  (never silently re-run: the script may have had effects).
- ``expire_queued_jobs``: pending past ``expires_at`` (queue_ttl) -> ``expired``.
- ``reconcile_lost_jobs``: pending, not leased, but in no queue list (Redis
  flushed or restarted empty, a poll cut off mid-pop) -> enqueued again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from orchestrator.extensions import db, redis_store
from orchestrator.models import TERMINAL_STATUSES, Agent, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import agent_queues, agents, lifecycle

log = logging.getLogger(__name__)

#: Pending jobs younger than this are left to the enqueue that follows their commit.
RECONCILE_GRACE = timedelta(seconds=5)
BATCH_SIZE = 500
AGENT_LOST = lifecycle.AGENT_LOST


def running_lease(agent: Agent) -> timedelta:
    """How long a running job stays leased without news: the agent's liveness window."""
    return max(timedelta(seconds=current_app.config["LEASE_SECONDS"]),
               agents.liveness_window(agent))


def renew_running_leases(agent: Agent, job_ids: Iterable[str],
                         now: datetime | None = None) -> int:
    """Extend the leases of ``agent``'s running jobs among ``job_ids``."""
    ids = list(job_ids)
    if not ids:
        return 0
    now = now or utcnow()
    return db.session.execute(
        sa.update(Job).where(Job.id.in_(ids), Job.agent_id == agent.id,
                             Job.status == JobStatus.RUNNING.value)
        .values(lease_expires_at=now + running_lease(agent))
        .execution_options(synchronize_session=False)
    ).rowcount


def cancel_commands(agent: Agent, reported: Iterable[str]) -> list[dict[str, str]]:
    """``cancel`` commands for the agent's jobs that must stop.

    Those are its running jobs with a cancel requested, and jobs it reports as
    running that the hub already finished (cancelled, or declared lost).
    """
    reported = list(reported)
    condition = sa.and_(Job.status == JobStatus.RUNNING.value,
                        Job.cancel_requested_at.is_not(None))
    if reported:
        condition = sa.or_(condition, sa.and_(Job.id.in_(reported),
                                              Job.status.in_(TERMINAL_STATUSES)))
    job_ids = db.session.execute(
        db.select(Job.id).where(Job.agent_id == agent.id, condition).order_by(Job.id)
    ).scalars()
    return [{"type": "cancel", "job_id": job_id} for job_id in job_ids]


def record_heartbeat(principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Store what the agent reports, renew its running jobs' leases, answer its commands."""
    agent = agents.agent_for_caller(principal, data["agent_name"])
    agents.apply_report(agent, data)
    agents.mark_alive(agent)
    running = data.get("running_jobs") or []
    renew_running_leases(agent, running)
    commands = cancel_commands(agent, running)
    return {"status": "ok", "commands": commands}


def _candidates(*conditions: Any) -> list[Job]:
    return list(db.session.execute(
        db.select(Job).where(*conditions).order_by(Job.created_at).limit(BATCH_SIZE)
    ).scalars())


def _conditional(job: Job, conditions: tuple[Any, ...], **values: Any) -> bool:
    """UPDATE ``job`` only if ``conditions`` still hold; refresh it when it changed."""
    changed = db.session.execute(
        sa.update(Job).where(Job.id == job.id, *conditions).values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if changed:
        db.session.refresh(job)
    return changed


def requeue_unacknowledged(now: datetime | None = None) -> int:
    """Put leased jobs whose start was never acknowledged back on their queue."""
    now = now or utcnow()
    still = (Job.status == JobStatus.PENDING.value, Job.lease_expires_at < now)
    requeued = 0
    for job in _candidates(*still):
        values: dict[str, Any] = {"lease_expires_at": None}
        if job.pool:
            values.update(agent_id=None, agent_name=None)
        if _conditional(job, still, **values):
            log.info("job %s: start not acknowledged within its lease; queued again", job.id)
            lifecycle.queue_jobs([job])
            requeued += 1
        db.session.commit()
    return requeued


def fail_lost_jobs(now: datetime | None = None) -> int:
    """Fail running jobs whose agent went silent past the lease (``agent_lost``)."""
    now = now or utcnow()
    still = (Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
    failed = 0
    for job in _candidates(*still):
        if lifecycle.finish_job(job, JobStatus.FAILED.value, *still, error=AGENT_LOST,
                                completed_at=now):
            log.warning("job %s: agent %s stopped reporting; failed as agent_lost",
                        job.id, job.agent_name)
            failed += 1
        db.session.commit()
    return failed


def expire_queued_jobs(now: datetime | None = None) -> int:
    """Expire pending jobs that waited longer than their ``queue_ttl``."""
    now = now or utcnow()
    still = (Job.status == JobStatus.PENDING.value, Job.expires_at < now)
    expired = 0
    for job in _candidates(*still):
        if lifecycle.finish_job(job, JobStatus.EXPIRED.value, *still, error=lifecycle.EXPIRED,
                                completed_at=now):
            expired += 1
        db.session.commit()
    return expired


def reconcile_lost_jobs(now: datetime | None = None) -> int:
    """Enqueue again the pending, unleased jobs whose id Redis no longer queues."""
    now = now or utcnow()
    conditions = [Job.status == JobStatus.PENDING.value, Job.lease_expires_at.is_(None),
                  Job.cancel_requested_at.is_(None), Job.created_at < now - RECONCILE_GRACE,
                  Job.held.is_(False),  # held fan-out jobs are queued when released
                  sa.or_(Job.agent_id.is_not(None), Job.pool.is_not(None))]
    restored = 0
    after: tuple[datetime, str] | None = None
    while True:
        page_conditions = list(conditions)
        if after is not None:
            page_conditions.append(sa.or_(Job.created_at > after[0], sa.and_(
                Job.created_at == after[0], Job.id > after[1])))
        page = list(db.session.execute(
            db.select(Job).where(*page_conditions).order_by(Job.created_at, Job.id)
            .limit(BATCH_SIZE)).scalars())
        db.session.commit()
        if not page:
            return restored
        restored += _enqueue_missing(page)
        after = (page[-1].created_at, page[-1].id)


def _enqueue_missing(jobs: list[Job]) -> int:
    """Push the jobs whose id is in no queue list. The RQ hash alone proves nothing: a
    poll cut off between its pop and its cleanup (a failover, a killed hub) leaves the
    hash behind with the id gone from the list."""
    pipe = redis_store.connection.pipeline(transaction=False)
    for job in jobs:
        pipe.lpos(agent_queues.queue(agent_queues.job_queue_name(job)).key, job.id)
    lost = [job for job, position in zip(jobs, pipe.execute(), strict=True) if position is None]
    for job in lost:
        log.warning("job %s was pending but missing from Redis; queued again", job.id)
        agent_queues.enqueue(job)
    return len(lost)
