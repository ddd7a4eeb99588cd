"""Putting a popped job id back at the head of its queue (its poller hung up before the lease)."""

from __future__ import annotations

import logging

import redis

from orchestrator.extensions import db
from orchestrator.models import Job

log = logging.getLogger(__name__)


def put_back(job_id: str) -> bool:
    """Queue ``job_id`` again at the front, so it is the next one handed out; False if not."""
    from orchestrator.services import dispatch

    job = db.session.get(Job, job_id)
    name = dispatch.job_queue_name(job) if job is not None else None
    db.session.commit()
    if name is None:
        return False
    try:
        dispatch._queue(name).enqueue_call(
            func=dispatch.AGENT_WORK_FUNC, job_id=job_id, result_ttl=0, at_front=True,
            description=f"{job.script} on {job.agent_name or job.pool}")
    except redis.RedisError as exc:
        log.warning("job %s not put back (%s); the reconciler will retry",
                    job_id, type(exc).__name__)
        return False
    log.info("job %s: its poller hung up before the lease; put back at the head of %s",
             job_id, name)
    return True
