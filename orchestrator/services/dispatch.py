"""Dispatch: create jobs, hand them out on agents' long-polls, wait for them.

The job row in the database is the truth; Redis only carries job ids to
agents (``orchestrator.services.agent_queues``). A new job's id is pushed
once its row has committed (``lifecycle.queue_jobs``); a poll pops ids with
``Queue.dequeue_any`` (a blocking pop) from the agent's queue and its pools'.

A popped job only goes to an agent after a conditional UPDATE leases it
(``status = 'pending' AND lease_expires_at IS NULL AND cancel_requested_at IS
NULL``), so duplicates in Redis, two hub replicas or a racing cancel can never
make a job run twice. Whatever Redis loses, ``leases.reconcile_lost_jobs``
puts back from the database.

While a request blocks on Redis it holds no database connection (the session
is committed and removed first): idle polls are cheap greenlets under gevent.
With SQLite, no Redis call is ever made inside an open write transaction.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue

from orchestrator.errors import Forbidden
from orchestrator.extensions import db, redis_store
from orchestrator.models import Agent, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import agent_control, agent_queues, agents, lifecycle, locks
from orchestrator.services import params as script_params
from orchestrator.shutdown import HubStopping, interruptible

log = logging.getLogger(__name__)

#: Redis list a job's finisher pushes to, so a synchronous trigger on any replica wakes.
FINISHED_KEY = "scriptmesh:job-finished:{job_id}"
FINISHED_KEY_TTL = 600
#: A synchronous trigger re-reads its job this often, in case its wake-up was lost.
WAIT_RECHECK_SECONDS = 2.0
#: Below this many seconds left, a poll stops blocking and only looks.
MIN_BLOCK_SECONDS = 0.01
#: Idle polls end after (1 - POLL_JITTER .. 1) x their wait.
POLL_JITTER = 0.2
MAX_POLL_JOBS = 100


@dataclass(frozen=True)
class PollingAgent:
    """What a poll needs of its agent once the database session is released."""

    id: str
    name: str
    tenant_id: str
    queue_names: tuple[str, ...]


@dataclass(frozen=True)
class TriggerOutcome:
    """A trigger's job and how it came about."""

    job: Job
    created: bool
    waited: bool = False


def wake_waiters(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` subscriber: wake synchronous triggers waiting for the job, on any
    replica (best effort: a waiter re-checks the row every ``WAIT_RECHECK_SECONDS``)."""
    key = FINISHED_KEY.format(job_id=payload["job_id"])
    pipe = redis_store.connection.pipeline(transaction=False)
    pipe.lpush(key, b"1")
    pipe.expire(key, FINISHED_KEY_TTL)
    pipe.execute()


def withdraw_finished(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` subscriber: take a job that ended while queued off its queue."""
    agent_queues.pull([[payload["job_id"], payload["queue"]]])


def push_queued(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``jobs.queued`` subscriber: push the committed jobs' ids to their queues."""
    agent_queues.push(payload["jobs"])


def string_params(params: dict[str, Any]) -> dict[str, str]:
    """Params as the environment sees them: booleans as true/false, numbers as written."""
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else repr(value)

    return {str(name): text(value) for name, value in params.items()}


def check_manifest(agent: Agent, data: dict[str, Any]) -> tuple[str, str]:
    """The job kind and name ``data`` runs (``run_flow`` or ``run_script``); 403
    ``flow_not_in_manifest`` / ``script_not_in_manifest`` unless ``agent`` lists it."""
    if data.get("run_flow"):
        flow = data["run_flow"]
        if flow not in agent.flow_names():
            raise Forbidden(f"Flow '{flow}' is not in the manifest of agent '{agent.name}'.",
                            error_code="flow_not_in_manifest",
                            details={"flow": flow, "agent": agent.name})
        return "flow", flow
    script = data["run_script"]
    if script not in agent.script_names():
        raise Forbidden(f"Script '{script}' is not in the manifest of agent '{agent.name}'.",
                        error_code="script_not_in_manifest",
                        details={"script": script, "agent": agent.name})
    script_params.validate_trigger_params(agent, script, data.get("params"))
    return "script", script


def trigger_script(principal: Principal, data: dict[str, Any], *,
                   schedule_id: str | None = None) -> TriggerOutcome:
    """Create a job for ``data["agent"]`` and queue it; wait for it when ``async_exec`` is false.

    A repeated ``idempotency_key`` returns the tenant's first job with that key.
    ``schedule_id`` marks a job a schedule created (``orchestrator.services.scheduling``).
    """
    key = data.get("idempotency_key")
    if key and (existing := find_by_idempotency_key(key)):
        return TriggerOutcome(existing, created=False)
    agent = agents.get_agent(data["agent"])
    kind, script = check_manifest(agent, data)
    now = utcnow()
    job = Job(
        tenant_id=principal.tenant_id, agent_id=agent.id, agent_name=agent.name, script=script,
        kind=kind, variables=dict(data.get("variables") or {}),
        params=string_params(data.get("params") or {}), status=JobStatus.PENDING.value,
        timeout=data["timeout"], webhook_url=data.get("webhook_url"), idempotency_key=key,
        created_by=principal.user_id, created_at=now, stdout="", stderr="", truncated={},
        expires_at=now + timedelta(seconds=data["queue_ttl"]) if data.get("queue_ttl") else None,
        schedule_id=schedule_id, **locks.job_options(data, agent, kind, script),
    )
    return submit(job, wait=not data.get("async_exec", True))


def submit(job: Job, *, wait: bool = False) -> TriggerOutcome:
    """Store a new job and queue it; with ``wait``, block until it ends (bounded by its timeout).

    A concurrent request that stored the same idempotency key first wins: its
    job is returned instead.
    """
    db.session.add(job)
    lifecycle.queue_jobs([job])
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        key = job.idempotency_key
        existing = find_by_idempotency_key(key) if key else None
        if existing is None:
            raise
        return TriggerOutcome(existing, created=False)
    if not wait:
        return TriggerOutcome(job, created=True)
    return TriggerOutcome(wait_for_finish(job.id, job.timeout), created=True, waited=True)


def find_by_idempotency_key(key: str) -> Job | None:
    return db.session.execute(
        db.select(Job).where(Job.idempotency_key == key)
    ).scalar_one_or_none()


def wait_for_finish(job_id: str, timeout: float) -> Job:
    """Block (holding no DB connection) until the job is terminal or ``timeout`` passes."""
    key = FINISHED_KEY.format(job_id=job_id)
    deadline = time.monotonic() + timeout
    while True:
        job = db.session.get(Job, job_id, populate_existing=True)
        remaining = deadline - time.monotonic()
        if job is None or job.is_terminal or remaining <= 0:
            return job
        db.session.commit()
        db.session.remove()
        try:
            with interruptible():
                redis_store.connection.blpop(
                    [key], timeout=min(max(remaining, MIN_BLOCK_SECONDS), WAIT_RECHECK_SECONDS))
        except HubStopping:
            return db.session.get(Job, job_id, populate_existing=True)


def poll(principal: Principal, agent_name: str, max_jobs: int, wait: float | None,
         client_gone: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Long-poll: lease up to ``max_jobs`` jobs to the agent, blocking up to ``wait`` seconds.

    Answers the moment one job is leased; jobs popped but no longer runnable
    (cancelled, expired, leased elsewhere) are dropped and the wait goes on.
    A stopping hub answers at once with what it has; a job popped for a client
    that has hung up goes back to the head of its queue.
    """
    agent = agents.agent_for_caller(principal, agent_name)
    agents.touch_from_poll(agent)
    if agent_control.refuses_work(agent):  # paused or draining: it is handed nothing
        return agent_control.idle_poll(poll_wait(wait, float(current_app.config["POLL_WAIT"])))
    polling = PollingAgent(agent.id, agent.name, agent.tenant_id,
                           agent_queues.agent_queue_names(agent))
    db.session.commit()
    db.session.remove()  # hold no DB connection while blocked in Redis
    deadline = time.monotonic() + poll_wait(wait, float(current_app.config["POLL_WAIT"]))
    leased: list[str] = []
    while not leased:
        remaining = deadline - time.monotonic()
        try:
            job_id = pop_job_id(polling.queue_names,
                                remaining if remaining >= MIN_BLOCK_SECONDS else None)
        except HubStopping:
            return {"jobs": []}
        if job_id is None:
            break
        if client_gone():
            job = db.session.get(Job, job_id)
            if job is not None:
                agent_queues.put_back(job)
            db.session.remove()
            return {"jobs": []}
        if lease(job_id, polling):
            leased.append(job_id)
    while leased and len(leased) < min(max_jobs, MAX_POLL_JOBS):
        job_id = pop_job_id(polling.queue_names, None)
        if job_id is None:
            break
        if lease(job_id, polling):
            leased.append(job_id)
    return {"jobs": assignments(leased)}


def poll_wait(asked: float | None, cap: float) -> float:
    """How long an idle poll blocks: what the agent asked, capped, less up to 20 % jitter.

    The jitter spreads re-arming polls: agents that started together (after a
    hub restart, say) would otherwise all come back in the same instant.
    """
    wait = cap if asked is None else min(max(asked, 0.0), cap)
    return wait * random.uniform(1 - POLL_JITTER, 1.0)


def pop_job_id(queue_names: Iterable[str], timeout: float | None) -> str | None:
    """Pop the next job id from the queues (blocking up to ``timeout``; None: just look)."""
    connection = redis_store.connection
    try:
        with interruptible() if timeout is not None else contextlib.nullcontext():
            found = Queue.dequeue_any([agent_queues.queue(n) for n in queue_names], timeout,
                                      connection=connection)
    except DequeueTimeout:
        return None
    if found is None:
        return None
    rq_job, queue = found
    # RQ parks a single queue's pop in an intermediate list for its workers; we have none.
    IntermediateQueue(queue.key, connection).remove(rq_job.id)
    connection.delete(rq_job.key)
    return rq_job.id


def lease(job_id: str, agent: PollingAgent) -> bool:
    """Lease a popped job to ``agent`` if it is still runnable; commit at once.

    A job whose lock or concurrency group is taken stays pending and waits for
    a holder to finish (``orchestrator.services.locks``).
    """
    now = utcnow()
    locks.serialize(job_id)
    lease_until = now + timedelta(seconds=current_app.config["LEASE_SECONDS"])
    result = db.session.execute(
        sa.update(Job).where(
            Job.id == job_id, Job.status == JobStatus.PENDING.value,
            Job.lease_expires_at.is_(None), Job.cancel_requested_at.is_(None),
            Job.held.is_(False),  # a held fan-out job waits for its turn
            sa.or_(Job.expires_at.is_(None), Job.expires_at > now),
            sa.or_(Job.agent_id == agent.id, sa.and_(Job.pool.is_not(None),
                                                     Job.agent_id.is_(None))),
            locks.may_start(agent.id), agent_control.accepts_jobs(agent.id, now),
        ).values(agent_id=agent.id, agent_name=agent.name, lease_expires_at=lease_until,
                 dispatched_at=now, dispatch_count=Job.dispatch_count + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def assignments(job_ids: list[str]) -> list[dict[str, Any]]:
    """The protocol's ASSIGNMENT for each leased job, in lease order."""
    if not job_ids:
        return []
    jobs = {job.id: job for job in db.session.execute(
        db.select(Job).where(Job.id.in_(job_ids))).scalars()}
    return [assignment(jobs[i]) for i in job_ids if i in jobs]


def assignment(job: Job) -> dict[str, Any]:
    """One job as the agent receives it: a script with params, or a flow with variables."""
    base = {"job_id": job.id, "kind": job.kind, "timeout": job.timeout,
            "lease_expires_at": job.lease_expires_at}
    if job.kind == "flow":  # an inline flow (services/inline_flows.py) carries its definition
        inline = {"definition": job.params["definition"]} if "definition" in (job.params or {}) \
            else {}
        return {**base, "flow": job.script, "variables": dict(job.variables or {}), **inline}
    return {**base, "script": job.script, "params": dict(job.params or {})}


def deregister_agent(name: str) -> None:
    """Forget an agent: its queued jobs are cancelled, its running ones fail; both with
    ``error = "agent_deregistered"``. The job rows stay (they keep the agent's name).
    """
    agent = agents.get_agent(name)
    open_jobs = db.session.execute(
        db.select(Job).where(Job.agent_id == agent.id, Job.status.in_(
            (JobStatus.PENDING.value, JobStatus.RUNNING.value)))).scalars().all()
    for job in open_jobs:
        status = JobStatus.CANCELLED if job.status == JobStatus.PENDING.value else JobStatus.FAILED
        lifecycle.finish_job(job, status.value, error=lifecycle.AGENT_DEREGISTERED)
    agent_id = agent.id
    db.session.delete(agent)
    db.session.commit()
    agent_queues.delete_agent_queue(agent_id)
