"""Fan-out: one call runs a script on many agents, one ordinary job per target agent.

Targets are chosen by names and/or tags (an agent must carry every given
tag), optionally in canary ``stages``. Every job row is created in one
transaction; the jobs beyond the first window (``max_concurrency``, later
stages) are ``held``: pending but not queued. ``fanout_progress`` releases,
cancels and completes them as the running ones finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import ValidationFailed
from orchestrator.extensions import db
from orchestrator.ids import new_id
from orchestrator.models import Agent, Fanout, FanoutStatus, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import lifecycle, locks, targeting
from orchestrator.services import params as script_params
from orchestrator.services.dispatch import string_params

#: Why a named or matched agent got no job (the one rule: ``targeting``).
OFFLINE, DRAINING, PAUSED = targeting.OFFLINE, targeting.DRAINING, targeting.PAUSED
NOT_FOUND = targeting.NOT_FOUND
NOT_IN_MANIFEST, FLOW_NOT_IN_MANIFEST = targeting.NOT_IN_MANIFEST, targeting.FLOW_NOT_IN_MANIFEST
DEFAULT_TIMEOUT = 300


@dataclass(frozen=True)
class FanoutOutcome:
    """A created (or, for a repeated idempotency key, found) fan-out and its jobs."""

    fanout: Fanout
    jobs: list[dict[str, str]]
    created: bool = True

    def answer(self) -> dict[str, Any]:
        """The API's answer: ``{fanout_id, jobs: [{agent, job_id}], skipped}``."""
        return {"fanout_id": self.fanout.id, "jobs": self.jobs,
                "skipped": list(self.fanout.skipped or [])}


@dataclass
class Selection:
    """Agents chosen for a fan-out, stage by stage, and the ones passed over."""

    stages: list[list[Agent]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(stage) for stage in self.stages)

    def all_agents(self) -> list[Agent]:
        return [agent for stage in self.stages for agent in stage]


def parse_limit(spec: str | int | None, size: int, *, at_least_one: bool) -> int | None:
    """Resolve a ``max_concurrency`` / ``max_errors`` spec against ``size`` targets.

    ``"N%"`` rounds up for concurrency (at least one job runs) and down for
    errors (``"10%"`` of 5 targets tolerates no error); None means no limit.
    """
    if spec is None:
        return None
    text = str(spec).strip()
    if text.endswith("%"):
        share = float(text[:-1]) * size / 100
        return max(1, math.ceil(share)) if at_least_one else math.floor(share)
    return int(text)


def _fail_selection(message: str, details: dict[str, Any]) -> ValidationFailed:
    return ValidationFailed(message, error_code="no_targets", details=details)


def tenant_agents() -> list[Agent]:
    """The tenant's agents by name (the tenant filter applies)."""
    return list(db.session.execute(db.select(Agent).order_by(Agent.name)).scalars())


match_agents = targeting.match_agents
skip_reason = targeting.skip_reason


def runnable(data: dict[str, Any]) -> tuple[str, str]:
    """``(kind, name)`` of what a fan-out runs: a script, or a flow (``run_flow``)."""
    return ("flow", data["run_flow"]) if data.get("run_flow") else ("script", data["run_script"])


def select_targets(data: dict[str, Any]) -> Selection:
    """Choose the agents of every stage; 422 ``no_targets`` when a stage gets none.

    Without ``stages`` the whole selection is one stage. An agent picked by
    several stages runs in the first of them only.
    """
    fleet = tenant_agents()
    selectors = data.get("stages") or [{"agents": data.get("agents"), "tags": data.get("tags")}]
    selection = Selection()
    taken: set[str] = set()
    kind, name = runnable(data)
    for index, selector in enumerate(selectors):
        found = targeting.eligible(fleet, selector.get("agents"), selector.get("tags"), kind,
                                   name, only_online=data.get("only_online", True),
                                   taken=taken)
        selection.skipped.extend(found.skipped)
        stage = found.agents
        if not stage:
            where = f"stages[{index}]" if data.get("stages") else "the selection"
            raise _fail_selection(
                f"No agent to run '{name}': {where} matched no "
                f"online agent whose manifest lists the {kind}.",
                {"stage": index if data.get("stages") else None, "selector": selector,
                 "skipped": selection.skipped})
        selection.stages.append(stage)
    return selection


def find_by_idempotency_key(key: str) -> Fanout | None:
    return db.session.execute(
        db.select(Fanout).where(Fanout.idempotency_key == key)
    ).scalar_one_or_none()


def existing_outcome(fanout: Fanout) -> FanoutOutcome:
    """The answer for a fan-out created earlier (a repeated idempotency key)."""
    rows = db.session.execute(
        db.select(Job.agent_name, Job.id).where(Job.fanout_id == fanout.id)
        .order_by(Job.fanout_seq)).all()
    return FanoutOutcome(fanout, [{"agent": name, "job_id": job_id} for name, job_id in rows],
                         created=False)


def stage_plan(data: dict[str, Any], selection: Selection) -> list[dict[str, Any]]:
    """Each stage's agents and resolved concurrency (its own, else the fan-out's)."""
    selectors = data.get("stages") or [{}]
    plan = []
    for selector, agents in zip(selectors, selection.stages, strict=True):
        spec = selector.get("max_concurrency") or data.get("max_concurrency")
        plan.append({"agents": [agent.name for agent in agents],
                     "max_concurrency": parse_limit(spec, len(agents), at_least_one=True),
                     "selector": {k: v for k, v in selector.items() if v is not None}})
    return plan


def create_fanout(principal: Principal, data: dict[str, Any]) -> FanoutOutcome:
    """Select the targets, create the fan-out and all its jobs in one transaction, queue
    the first window. A repeated ``idempotency_key`` answers the first fan-out."""
    key = data.get("idempotency_key")
    if key and (existing := find_by_idempotency_key(key)):
        return existing_outcome(existing)
    outcome = build_fanout(principal, data)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        existing = find_by_idempotency_key(key) if key else None
        if existing is None:
            raise
        return existing_outcome(existing)
    return outcome


def build_fanout(principal: Principal, data: dict[str, Any], *, schedule_id: str | None = None,
                 rerun_of: str | None = None) -> FanoutOutcome:
    """Create the fan-out and its jobs in the caller's transaction (flushed, not committed)."""
    selection = select_targets(data)
    plan = stage_plan(data, selection)
    now = utcnow()
    kind, name = runnable(data)
    if kind == "script":
        script_params.validate_for_agents(selection.all_agents(), name, data.get("params"))
    fanout = Fanout(
        tenant_id=principal.tenant_id, kind=kind, script=name,
        params=string_params(data.get("params") or {}),
        variables=dict(data.get("variables") or {}) if kind == "flow" else None,
        timeout=data.get("timeout") or DEFAULT_TIMEOUT, webhook_url=data.get("webhook_url"),
        selection={"agents": data.get("agents"), "tags": data.get("tags"),
                   "only_online": data.get("only_online", True)},
        stages=plan, max_concurrency=_spec(data.get("max_concurrency")),
        max_errors=_spec(data.get("max_errors")),
        error_limit=parse_limit(data.get("max_errors"), selection.total, at_least_one=False),
        skipped=selection.skipped, total=selection.total, current_stage=0,
        status=FanoutStatus.RUNNING.value, idempotency_key=data.get("idempotency_key"),
        created_by=principal.user_id, created_at=now, schedule_id=schedule_id,
        rerun_of=rerun_of, job_options=locks.job_options(data),
    )
    db.session.add(fanout)
    db.session.flush()
    jobs = build_jobs(fanout, selection, plan, principal, now)
    db.session.add_all(jobs)
    lifecycle.queue_jobs([job for job in jobs if not job.held])
    return FanoutOutcome(fanout, [{"agent": job.agent_name, "job_id": job.id} for job in jobs])


def build_jobs(fanout: Fanout, selection: Selection, plan: list[dict[str, Any]],
               principal: Principal, now: datetime) -> list[Job]:
    """One pending job per target, in release order; all but the first window held."""
    jobs = []
    seq = 0
    for stage_index, agents in enumerate(selection.stages):
        window = plan[stage_index]["max_concurrency"]
        for position, agent in enumerate(agents):
            held = stage_index > 0 or (window is not None and position >= window)
            jobs.append(Job(
                id=new_id("job"), tenant_id=principal.tenant_id, agent_id=agent.id,
                agent_name=agent.name, kind=fanout.kind, script=fanout.script,
                params=dict(fanout.params), variables=dict(fanout.variables or {}),
                status=JobStatus.PENDING.value, timeout=fanout.timeout,
                webhook_url=fanout.webhook_url, created_by=principal.user_id, created_at=now,
                stdout="", stderr="", truncated={}, fanout_id=fanout.id,
                fanout_stage=stage_index, fanout_seq=seq, held=held,
                schedule_id=fanout.schedule_id,
                **locks.job_options(fanout.job_options or {}, agent, fanout.kind, fanout.script),
            ))
            seq += 1
    return jobs


def _spec(value: str | int | None) -> str | None:
    return None if value is None else str(value)
