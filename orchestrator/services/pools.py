"""Pools: one job that the first free online agent carrying a tag takes.

A pool job has no agent until a poll leases it: it waits on the tag's pool
queue (``dispatch.pool_queue_name``), which every agent with that tag listens
to next to its own queue. The conditional lease UPDATE lets exactly one
agent take it, and the job row then names that agent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.errors import ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import Agent, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import dispatch, locks
from orchestrator.services import params as script_params


def pool_agents(tag: str) -> list[Agent]:
    """The tenant's agents carrying ``tag``."""
    fleet = db.session.execute(db.select(Agent).order_by(Agent.name)).scalars()
    return [agent for agent in fleet if tag in (agent.tags or ())]


def check_pool(tag: str, script: str, kind: str = "script") -> None:
    """422 ``no_pool_agent`` unless some agent with ``tag`` may run ``script`` (a flow when
    ``kind`` is ``"flow"``)."""
    members = pool_agents(tag)
    if not any(script in (agent.flow_names() if kind == "flow" else agent.script_names())
               for agent in members):
        raise ValidationFailed(
            f"No agent tagged '{tag}' lists '{script}' in its manifest.",
            error_code="no_pool_agent",
            details={"pool": tag, "script": script, "agents": [a.name for a in members]})


def trigger_pool(principal: Principal, data: dict[str, Any], *,
                 schedule_id: str | None = None) -> dispatch.TriggerOutcome:
    """Create one job for the pool ``data["pool"]`` and queue it on the pool's queue.

    Like ``dispatch.trigger_script``: idempotency keys, ``queue_ttl`` and
    ``async_exec: false`` (wait for the result) work the same.
    """
    key = data.get("idempotency_key")
    if key and (existing := dispatch.find_by_idempotency_key(key)):
        return dispatch.TriggerOutcome(existing, created=False)
    kind, name = ("flow", data["run_flow"]) if data.get("run_flow") else (
        "script", data["run_script"])
    check_pool(data["pool"], name, kind)
    if kind == "script":
        script_params.validate_for_agents(pool_agents(data["pool"]), name, data.get("params"))
    now = utcnow()
    job = Job(
        tenant_id=principal.tenant_id, agent_id=None, agent_name=None, pool=data["pool"],
        kind=kind, script=name, variables=dict(data.get("variables") or {}),
        params=dispatch.string_params(data.get("params") or {}),
        status=JobStatus.PENDING.value, timeout=data["timeout"],
        webhook_url=data.get("webhook_url"), idempotency_key=key,
        created_by=principal.user_id, created_at=now, stdout="", stderr="", truncated={},
        expires_at=now + timedelta(seconds=data["queue_ttl"]) if data.get("queue_ttl") else None,
        schedule_id=schedule_id, **locks.job_options(data),
    )
    return dispatch.submit(job, wait=not data.get("async_exec", True))
