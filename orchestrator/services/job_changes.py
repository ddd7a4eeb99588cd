"""Announce that a job changed (output appended, steps applied, status moved) to every replica.

``changed(job_id)`` emits ``job.changed`` in the transaction that changes a
job; after its commit (an AFTER_COMMIT subscriber, as for ``job.finished``)
one Redis ``PUBLISH`` of the job id on one channel wakes the job's followers
(``orchestrator.services.job_output``).
Redis is only the wake-up: a lost announcement delays a follower until its next
keepalive, when it reads the database anyway.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from orchestrator.extensions import redis_store
from orchestrator.services import outbox

log = logging.getLogger(__name__)

#: The one pub/sub channel job changes are announced on (message: the job id).
CHANNEL = "scriptmesh:job-changed"


JOB_CHANGED = "job.changed"


def changed(job_id: str) -> None:
    """Have followers of ``job_id`` woken once the current transaction commits."""
    outbox.emit(JOB_CHANGED, {"job_id": job_id})


def announce_payload(payload: dict[str, Any], _attempt: int = 1) -> None:
    """Subscriber of ``job.changed`` and ``job.finished``: wake the job's followers."""
    announce(payload["job_id"])


def announce(*job_ids: str) -> None:
    """Wake every follower of these jobs, on every replica (call after the commit)."""
    if not job_ids:
        return
    try:
        pipe = redis_store.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(CHANNEL, job_id)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("job change not announced: %s", type(exc).__name__)
