"""The Redis side of dispatch: which queue a job waits in, and pushing ids on and off.

Each agent has its own RQ queue (``scriptmesh-agent-<agent_id>``); pool jobs
wait in a queue shared by the agents of a tag (``scriptmesh-pool-<tenant>-<tag>``).
The queues are consumed by agents' long-polls (``dispatch.poll``), never by
``rq worker``: the RQ job's function is a name that is never executed.

Redis only carries job ids; the job row is the truth. So every push here is
best effort: a pending job whose id Redis lost is pushed again by
``leases.reconcile_lost_jobs``, and a withdrawal that failed is harmless (the
lease guard refuses a job that must not run).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from rq import Queue
from rq.job import Job as RQJob

from orchestrator.extensions import redis_store
from orchestrator.models import Agent, Job

log = logging.getLogger(__name__)

AGENT_QUEUE_PREFIX = "scriptmesh-agent-"
POOL_QUEUE_PREFIX = "scriptmesh-pool-"
#: The RQ "function" of agent work: a name only, never imported nor run.
AGENT_WORK_FUNC = "orchestrator.agent_work.run_on_agent"

#: (job id, queue name or None, description): one job to push or pull.
Entry = Sequence[Any]


def agent_queue_name(agent_id: str) -> str:
    return AGENT_QUEUE_PREFIX + agent_id


def pool_queue_name(tenant_id: str, tag: str) -> str:
    return f"{POOL_QUEUE_PREFIX}{tenant_id}-{tag}"


def job_queue_name(job: Job) -> str | None:
    """The queue ``job`` waits in: its pool's, else its agent's (None: nowhere to go)."""
    if job.pool:
        return pool_queue_name(job.tenant_id, job.pool)
    return agent_queue_name(job.agent_id) if job.agent_id else None


def agent_queue_names(agent: Agent) -> tuple[str, ...]:
    """The queues an agent's poll listens on: its own first, then its tags' pools."""
    return (agent_queue_name(agent.id),
            *(pool_queue_name(agent.tenant_id, tag) for tag in agent.tags or ()))


def queue(name: str) -> Queue:
    return Queue(name, connection=redis_store.connection)


def entry(job: Job) -> list[Any]:
    return [job.id, job_queue_name(job), f"{job.script} on {job.agent_name or job.pool}"]


def push(entries: Iterable[Entry]) -> None:
    """Enqueue job ids on their queues, one pipeline for all of them."""
    by_queue: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for job_id, queue_name, description in entries:
        if queue_name:
            by_queue[queue_name].append((job_id, description))
    if not by_queue:
        return
    connection = redis_store.connection
    pipe = connection.pipeline(transaction=False)
    for queue_name, items in by_queue.items():
        Queue(queue_name, connection=connection).enqueue_many(
            [Queue.prepare_data(AGENT_WORK_FUNC, job_id=job_id, result_ttl=0,
                                description=description) for job_id, description in items],
            pipeline=pipe)
    pipe.execute()


def pull(entries: Iterable[Entry]) -> None:
    """Remove job ids from their queues and drop their RQ hashes."""
    connection = redis_store.connection
    pipe = connection.pipeline(transaction=False)
    for job_id, queue_name, *_rest in entries:
        if queue_name:
            pipe.lrem(Queue(queue_name, connection=connection).key, 1, job_id)
        pipe.delete(RQJob.key_for(job_id))
    pipe.execute()


def enqueue(job: Job) -> bool:
    """Push one committed job now; False (logged) when Redis failed."""
    try:
        push([entry(job)])
    except redis.RedisError as exc:
        log.warning("job %s not enqueued (%s); the reconciler will retry",
                    job.id, type(exc).__name__)
        return False
    return True


def put_back(job: Job) -> bool:
    """Queue a popped job id again at the head of its queue (its poller hung up before the
    lease), so it is the next one handed out; False (logged) when Redis failed."""
    name = job_queue_name(job)
    if name is None:
        return False
    try:
        queue(name).enqueue_call(func=AGENT_WORK_FUNC, job_id=job.id, result_ttl=0,
                                 at_front=True, description=entry(job)[2])
    except redis.RedisError as exc:
        log.warning("job %s not put back (%s); the reconciler will retry",
                    job.id, type(exc).__name__)
        return False
    log.info("job %s: its poller hung up before the lease; put back at the head of %s",
             job.id, name)
    return True


def delete_agent_queue(agent_id: str) -> None:
    """Drop an agent's queue and the job hashes in it (the agent is being deregistered)."""
    try:
        queue(agent_queue_name(agent_id)).delete(delete_jobs=True)
    except redis.RedisError as exc:
        log.warning("queue of agent %s not deleted: %s", agent_id, type(exc).__name__)


def queue_depths(queue_names: Iterable[str]) -> list[int]:
    """The number of job ids waiting in each named queue."""
    pipe = redis_store.connection.pipeline(transaction=False)
    for name in queue_names:
        pipe.llen(queue(name).key)
    return [int(n) for n in pipe.execute()]
