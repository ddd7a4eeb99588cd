"""Operator control of agents: pause, resume and drain (``POST /agents/{name}/...``).

A paused agent is handed nothing: its long-poll answers no jobs
(``dispatch.poll`` asks ``refuses_work``), so pools pass its share to other
agents, and ``targeting`` leaves it out of fan-outs and schedule fires.
Running jobs finish. A pause may end by itself (``until``). Draining is a
pause that ends with the agent deregistered once it runs nothing
(``finish_drains``, run by maintenance).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Agent, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import agents, audit, lifecycle

#: A paused agent's poll answers (empty) after at most this many seconds.
PAUSED_POLL_SECONDS = 5.0
OPEN_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def refuses_work(agent: Agent) -> bool:
    """Whether ``agent`` must get no new job now (paused, or draining by request)."""
    return agent.is_paused() or agent.drain_requested_at is not None


def accepts_jobs(agent_id: str, now: datetime) -> sa.ColumnElement[bool]:
    """Lease condition: the agent is not paused or draining (a poll that was already
    waiting when the pause came must not take a job). A refused job waits for
    ``resume_agent``, which queues it again."""
    return ~sa.exists().where(
        Agent.id == agent_id,
        sa.or_(Agent.drain_requested_at.is_not(None),
               sa.and_(Agent.paused_at.is_not(None),
                       sa.or_(Agent.paused_until.is_(None), Agent.paused_until > now))))


def idle_poll(wait: float) -> dict[str, Any]:
    """Answer a paused agent's poll: release the session, wait a little, no jobs."""
    db.session.commit()
    db.session.remove()
    time.sleep(min(wait, PAUSED_POLL_SECONDS))
    return {"jobs": []}


def pause_agent(principal: Principal, name: str, note: str | None = None,
                until: datetime | None = None) -> Agent:
    """Pause ``name``: no new jobs until resumed (or ``until``); running ones finish."""
    agent = agents.get_agent(name)
    agent.paused_at, agent.paused_until = utcnow(), until
    agent.pause_note, agent.paused_by = note, principal.user_id
    audit.record("agent.pause", agent.name, note=note,
                 until=until.isoformat() if until else None)
    db.session.flush()
    return agent


def resume_agent(name: str) -> Agent:
    """Hand ``name`` jobs again (also ends a drain that has not completed)."""
    agent = agents.get_agent(name)
    agent.paused_at = agent.paused_until = agent.pause_note = agent.paused_by = None
    agent.drain_requested_at = None
    audit.record("agent.resume", agent.name)
    requeue_refused(agent)
    db.session.flush()
    return agent


def requeue_refused(agent: Agent) -> None:
    """Queue again the jobs a poll popped but could not lease while ``agent`` was paused:
    its own, and those of the pools it is in (a duplicate id is harmless)."""
    waiting = [Job.status == JobStatus.PENDING.value, Job.lease_expires_at.is_(None),
               Job.held.is_(False), Job.cancel_requested_at.is_(None)]
    mine = Job.agent_id == agent.id
    pooled = sa.and_(Job.agent_id.is_(None), Job.pool.in_(list(agent.tags or [])))
    jobs = db.session.execute(db.select(Job).where(*waiting, sa.or_(mine, pooled))).scalars()
    lifecycle.queue_jobs(jobs)


def drain_agent(principal: Principal, name: str, note: str | None = None) -> Agent:
    """Pause ``name`` and deregister it once none of its jobs is pending or running."""
    agent = pause_agent(principal, name, note)
    agent.drain_requested_at = utcnow()
    audit.record("agent.drain", agent.name, note=note)
    db.session.flush()
    return agent


def control_state(agent: Agent) -> dict[str, Any]:
    """The pause/drain fields ``/agents`` shows."""
    return {"paused": agent.is_paused(), "paused_at": agent.paused_at,
            "paused_until": agent.paused_until, "pause_note": agent.pause_note,
            "drain_requested_at": agent.drain_requested_at}


def end_expired_pauses(now: datetime | None = None) -> int:
    """Maintenance: a pause whose ``until`` passed ends; what it refused is queued again."""
    now = now or utcnow()
    expired = list(db.session.execute(
        db.select(Agent).where(Agent.paused_at.is_not(None), Agent.paused_until <= now,
                               Agent.drain_requested_at.is_(None))
        .execution_options(all_tenants=True)).scalars())
    for agent in expired:
        agent.paused_at = agent.paused_until = agent.pause_note = agent.paused_by = None
        requeue_refused(agent)
    db.session.commit()
    return len(expired)


def finish_drains() -> int:
    """Deregister draining agents that run nothing any more (maintenance); returns how many."""
    from orchestrator.services import dispatch, scheduling  # noqa: PLC0415 - import cycle

    busy = sa.select(Job.id).where(Job.agent_id == Agent.id,
                                   Job.status == JobStatus.RUNNING.value).exists()
    idle = db.session.execute(
        sa.select(Agent.tenant_id, Agent.name)
        .where(Agent.drain_requested_at.is_not(None), ~busy)
        .execution_options(all_tenants=True)).all()
    db.session.commit()
    for tenant_id, name in idle:
        with scheduling.acting_for_tenant(tenant_id):
            audit.record("agent.deregister", name, tenant_id=tenant_id, reason="drained")
            dispatch.deregister_agent(name)  # cancels what was still queued; commits
    return len(idle)
