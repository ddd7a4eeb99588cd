"""Locks and concurrency groups: whether a pending job may start now, and who goes next.

A job may carry ``lock`` (at most one job holding that name runs on one
agent at a time; a manifest entry's ``"lock"`` is the default for its
script) and ``concurrency_group`` + ``concurrency_limit`` (at most N jobs of
the group run at once across the tenant's fleet). A job *holds* while it is
leased or running.

Both rules are enforced where a job is handed out: ``dispatch.lease`` first
calls ``serialize`` (a transaction-scoped advisory lock per tenant on
PostgreSQL, taken only for jobs that have a lock or a group; SQLite
serialises writers anyway), then adds ``may_start`` to its conditional
UPDATE. So two hub replicas leasing at once cannot both pass.

A job refused for its lock waits (pending, unleased, off Redis); it is not
failed. When a holder finishes, ``requeue_waiters`` (an IN_TRANSACTION
``job.finished`` subscriber) queues the oldest waiters again in the same
transaction, so the push commits with the finish and the waiter gets its
turn. ``leases.reconcile_lost_jobs`` is the safety net for a lost push.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from orchestrator.extensions import db
from orchestrator.models import Agent, Job, JobStatus
from orchestrator.services import lifecycle

PENDING, RUNNING = JobStatus.PENDING.value, JobStatus.RUNNING.value
OPTION_FIELDS = ("lock", "concurrency_group", "concurrency_limit")


def job_options(data: dict[str, Any], agent: Agent | None = None, kind: str = "script",
                script: str | None = None) -> dict[str, Any]:
    """The lock fields for a new job: as requested, else the manifest entry's default lock."""
    options = {name: data.get(name) for name in OPTION_FIELDS}
    if not options["lock"] and agent is not None and kind == "script" and script:
        options["lock"] = manifest_lock(agent, script)
    if not options["concurrency_group"]:
        options["concurrency_limit"] = None
    return options


def manifest_lock(agent: Agent, script: str) -> str | None:
    """The ``"lock"`` the agent's manifest declares for ``script``, if any."""
    for entry in (agent.manifest or {}).get("scripts", []):
        if entry.get("name") == script and entry.get("lock"):
            return str(entry["lock"])
    return None


def _holding(job: Any) -> sa.ColumnElement[bool]:
    return sa.or_(job.status == RUNNING,
                  sa.and_(job.status == PENDING, job.lease_expires_at.is_not(None)))


def may_start(agent_id: str) -> sa.ColumnElement[bool]:
    """Condition on ``Job`` for a lease to ``agent_id``: its lock is free on that agent and
    its group is below its limit."""
    holder = aliased(Job)
    same_lock = sa.exists().where(holder.tenant_id == Job.tenant_id, holder.id != Job.id,
                                  holder.agent_id == agent_id, holder.lock == Job.lock,
                                  _holding(holder))
    in_group = (sa.select(sa.func.count()).select_from(holder)
                .where(holder.tenant_id == Job.tenant_id, holder.id != Job.id,
                       holder.concurrency_group == Job.concurrency_group, _holding(holder))
                .scalar_subquery())
    return sa.and_(
        sa.or_(Job.lock.is_(None), ~same_lock),
        sa.or_(Job.concurrency_group.is_(None), Job.concurrency_limit.is_(None),
               in_group < Job.concurrency_limit))


def serialize(job_id: str) -> None:
    """Make concurrent leases of locked or grouped jobs of one tenant take turns
    (PostgreSQL advisory lock until the commit; nothing to do on SQLite)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.execute(sa.text(
        "SELECT pg_advisory_xact_lock(hashtext('scriptmesh-locks:' || tenant_id)) FROM jobs "
        "WHERE id = :id AND (lock IS NOT NULL OR concurrency_group IS NOT NULL)"),
        {"id": job_id})


def requeue_waiters(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` (in the transaction): a holder ended; queue the next waiters."""
    job = db.session.get(Job, payload["job_id"])
    if job is None or not (job.lock or job.concurrency_group):
        return
    waiting = [Job.status == PENDING, Job.lease_expires_at.is_(None), Job.held.is_(False),
               Job.cancel_requested_at.is_(None), Job.tenant_id == job.tenant_id,
               Job.id != job.id]
    found: dict[str, Job] = {}
    if job.lock and job.agent_id:
        found.update(_oldest(waiting + [Job.lock == job.lock, Job.agent_id == job.agent_id], 1))
    if job.concurrency_group:
        found.update(_oldest(waiting + [Job.concurrency_group == job.concurrency_group],
                             max(job.concurrency_limit or 1, 1)))
    lifecycle.queue_jobs(found.values())


def _oldest(conditions: list[Any], limit: int) -> dict[str, Job]:
    jobs = db.session.execute(db.select(Job).where(*conditions)
                              .order_by(Job.created_at, Job.id).limit(limit)).scalars()
    return {job.id: job for job in jobs}


def held_locks(agent: Agent) -> list[dict[str, Any]]:
    """What ``agent`` holds now: ``[{"lock" | "concurrency_group", "job_id"}]`` (for /agents)."""
    rows = db.session.execute(
        db.select(Job.id, Job.lock, Job.concurrency_group)
        .where(Job.agent_id == agent.id, _holding(Job),
               sa.or_(Job.lock.is_not(None), Job.concurrency_group.is_not(None)))).all()
    return [{"job_id": job_id, "lock": lock, "concurrency_group": group}
            for job_id, lock, group in rows]
