"""Carrying fan-out jobs to (and off) their agents' queues once their rows are committed.

Jobs are released or cancelled inside other transactions (an agent's result,
the reaper, a cancel), so the Redis side waits for that transaction to
commit: ``enqueue_after_commit`` and ``withdraw_after_commit`` park plain job
ids on the session; the ``after_commit`` hook pushes them in one pipeline and
a rollback drops them. A lost push is repaired by ``leases.reconcile_lost_jobs``;
a withdrawal that failed is harmless (the lease guard refuses the job).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

import redis
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import event
from sqlalchemy.orm import Session

from orchestrator.extensions import db, redis_store
from orchestrator.models import Job
from orchestrator.services.dispatch import AGENT_WORK_FUNC, job_queue_name

log = logging.getLogger(__name__)

ENQUEUE_KEY = "scriptmesh.fanout_enqueue"
WITHDRAW_KEY = "scriptmesh.fanout_withdraw"


def _park(key: str, jobs: Iterable[Job]) -> None:
    entries = [(job.id, job_queue_name(job), f"{job.script} on {job.agent_name or job.pool}")
               for job in jobs]
    if entries:
        db.session().info.setdefault(key, []).extend(entries)


def enqueue_after_commit(jobs: Iterable[Job]) -> None:
    """Queue ``jobs`` for their agents once the current transaction commits."""
    _park(ENQUEUE_KEY, jobs)


def withdraw_after_commit(jobs: Iterable[Job]) -> None:
    """Take ``jobs`` off their queues once the current transaction commits (best effort)."""
    _park(WITHDRAW_KEY, jobs)


def push(entries: list[tuple[str, str | None, str]]) -> None:
    """Enqueue (job id, queue name, description) entries, one pipeline for all queues."""
    by_queue: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for job_id, queue_name, description in entries:
        if queue_name:
            by_queue[queue_name].append((job_id, description))
    connection = redis_store.connection
    pipe = connection.pipeline(transaction=False)
    for queue_name, items in by_queue.items():
        queue = Queue(queue_name, connection=connection)
        queue.enqueue_many([Queue.prepare_data(AGENT_WORK_FUNC, job_id=job_id, result_ttl=0,
                                               description=description)
                            for job_id, description in items], pipeline=pipe)
    pipe.execute()


def pull(entries: list[tuple[str, str | None, str]]) -> None:
    """Remove job ids from their queues and drop their RQ hashes."""
    connection = redis_store.connection
    pipe = connection.pipeline(transaction=False)
    for job_id, queue_name, _description in entries:
        if queue_name:
            pipe.lrem(Queue(queue_name, connection=connection).key, 1, job_id)
        pipe.delete(RQJob.key_for(job_id))
    pipe.execute()


@event.listens_for(Session, "after_commit")
def _carry_after_commit(session: Session) -> None:
    for key, action in ((ENQUEUE_KEY, push), (WITHDRAW_KEY, pull)):
        entries = session.info.pop(key, None)
        if not entries:
            continue
        try:
            action(entries)
        except redis.RedisError as exc:  # the commit stands; maintenance repairs the queue
            log.warning("%d fan-out job(s) not %s: %s", len(entries),
                        "queued" if action is push else "withdrawn", type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(ENQUEUE_KEY, None)
    session.info.pop(WITHDRAW_KEY, None)
