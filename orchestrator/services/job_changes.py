"""Announce that a job changed (output appended, steps applied, status moved) to every replica.

One Redis ``PUBLISH`` of the job id on one channel, after the commit that made
the change; ``orchestrator.services.job_output`` wakes the job's followers.
Redis is only the wake-up: a lost announcement delays a follower until its next
keepalive, when it reads the database anyway.
"""

from __future__ import annotations

import logging

import redis

from orchestrator.extensions import redis_store

log = logging.getLogger(__name__)

#: The one pub/sub channel job changes are announced on (message: the job id).
CHANNEL = "scriptmesh:job-changed"


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
