"""Rollout control of fan-outs: approval gates, bake time, pause/resume, re-run, target states.

A stage may carry ``approve`` (before it starts, the fan-out waits in
``awaiting_approval`` until ``POST /fanouts/{id}/approve``) and
``bake_seconds`` (after it succeeded, wait that long before the next one).
``fanout_progress.release`` asks ``holds_next_stage`` before moving on; the
gate is kept on the fan-out row (``gate``, ``gate_until``) and its passing on
the stage plan (``baked_at``, ``approved_at``), so every decision is taken
under the fan-out lock. ``open_baked_gates`` (maintenance) moves fan-outs on
once their bake time is over.

Pausing holds every target not yet handed out (``held``: the lease refuses
it); running ones finish. Resuming releases them through the usual window.
The error budget (``max_errors``) already counts across all stages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import Conflict, ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import Agent, Fanout, FanoutStatus, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import audit, fanout_progress, lifecycle
from orchestrator.services import params as script_params
from orchestrator.services.events import record_event

AWAITING_APPROVAL = "awaiting_approval"
BAKING = "baking"
PAUSED = "paused"
#: ``rerun`` ``only`` values -> what a target's job must look like to be run again.
FAILED_STATUSES = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value, JobStatus.EXPIRED.value)


def _stage(fanout: Fanout, index: int) -> dict[str, Any]:
    return (fanout.stages or [])[index]


def _mark_stage(fanout: Fanout, index: int, **values: Any) -> None:
    """Set fields on one stage of the plan (a fresh list, so the JSON change is saved)."""
    stages = [dict(stage) for stage in fanout.stages]
    stages[index].update(values)
    fanout.stages = stages


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def holds_next_stage(fanout: Fanout, stage: int) -> bool:
    """Whether the stage after ``stage`` (which succeeded) must wait; sets the gate if so."""
    done, following = _stage(fanout, stage), _stage(fanout, stage + 1)
    now = utcnow()
    bake = (done.get("selector") or {}).get("bake_seconds")
    if bake and not done.get("baked_at"):
        if fanout.gate != BAKING:
            fanout.gate, fanout.gate_until = BAKING, now + timedelta(seconds=bake)
            return True
        if fanout.gate_until and now < fanout.gate_until:
            return True
        _mark_stage(fanout, stage, baked_at=_iso(now))
    if (following.get("selector") or {}).get("approve") and not following.get("approved_at"):
        if fanout.gate != AWAITING_APPROVAL:
            fanout.gate, fanout.gate_until = AWAITING_APPROVAL, None
            record_event(fanout.tenant_id, "fanout.awaiting_approval", subject=fanout.id,
                         payload={"fanout_id": fanout.id, "script": fanout.script,
                                  "stage": stage + 1})
        return True
    fanout.gate = fanout.gate_until = None
    return False


def has_verify(fanout: Fanout) -> bool:
    return any((stage.get("selector") or {}).get("verify") for stage in fanout.stages or [])


def start_verify(fanout: Fanout, stage: int) -> bool:
    """When ``stage`` succeeded and names a ``verify`` script not run yet: create one verify
    job per agent of the stage (part of the stage: a failing one fails it) and queue them."""
    plan = _stage(fanout, stage)
    script = (plan.get("selector") or {}).get("verify")
    if not script or plan.get("verify_started_at"):
        return False
    done = list(db.session.execute(
        db.select(Job).where(Job.fanout_id == fanout.id, Job.fanout_stage == stage,
                             Job.status == JobStatus.SUCCESS.value)
        .order_by(Job.fanout_seq)).scalars())
    last_seq = db.session.execute(sa.select(sa.func.max(Job.fanout_seq))
                                  .where(Job.fanout_id == fanout.id)).scalar() or 0
    stage_agents = db.session.execute(db.select(Agent).where(
        Agent.id.in_({job.agent_id for job in done}))).scalars().all()
    accepted = script_params.declared_names(stage_agents, script)
    params = {k: v for k, v in (fanout.params or {}).items() if accepted is None or k in accepted}
    jobs = [Job(tenant_id=fanout.tenant_id, agent_id=job.agent_id, agent_name=job.agent_name,
                kind="script", script=script, params=params, variables={},
                status=JobStatus.PENDING.value, timeout=fanout.timeout,
                created_by=fanout.created_by, created_at=utcnow(), stdout="", stderr="",
                truncated={}, fanout_id=fanout.id, fanout_stage=stage,
                fanout_seq=last_seq + 1 + index, held=False, schedule_id=fanout.schedule_id)
            for index, job in enumerate(done)]
    _mark_stage(fanout, stage, verify_started_at=_iso(utcnow()))
    fanout.total += len(jobs)
    db.session.add_all(jobs)
    lifecycle.queue_jobs(jobs)
    return bool(jobs)


def display_status(fanout: Fanout) -> str:
    """The status users see: a running fan-out says what it waits for."""
    if fanout.status != FanoutStatus.RUNNING.value:
        return fanout.status
    if fanout.paused_at is not None:
        return PAUSED
    return fanout.gate or fanout.status


def _locked_open(fanout_id: str) -> Fanout:
    fanout = fanout_progress.get_fanout(fanout_id)
    fanout = fanout_progress.lock_fanout(fanout.id)
    if fanout is None or fanout.done:
        raise Conflict(f"Fan-out {fanout_id} has finished.", error_code="fanout_finished")
    return fanout


def approve(fanout_id: str) -> Fanout:
    """Let the stage waiting for approval start (409 unless one is waiting)."""
    fanout = _locked_open(fanout_id)
    if fanout.gate != AWAITING_APPROVAL:
        raise Conflict(f"Fan-out {fanout_id} is not awaiting approval.",
                       error_code="not_awaiting_approval", details={"gate": fanout.gate})
    stage = fanout.current_stage + 1
    _mark_stage(fanout, stage, approved_at=_iso(utcnow()))
    fanout.gate = None
    audit.record("fanout.approve", fanout.id, stage=stage)
    fanout_progress.advance(fanout)
    db.session.flush()
    return fanout


def pause(fanout_id: str) -> Fanout:
    """No new target starts (those not yet handed out are held); running ones finish."""
    fanout = _locked_open(fanout_id)
    if fanout.paused_at is None:
        fanout.paused_at = utcnow()
        db.session.execute(
            sa.update(Job).where(Job.fanout_id == fanout.id,
                                 Job.status == JobStatus.PENDING.value,
                                 Job.lease_expires_at.is_(None), Job.held.is_(False))
            .values(held=True).execution_options(synchronize_session=False))
    audit.record("fanout.pause", fanout.id)
    db.session.flush()
    return fanout


def resume(fanout_id: str) -> Fanout:
    """Start targets again, within the fan-out's windows and gates."""
    fanout = _locked_open(fanout_id)
    fanout.paused_at = None
    audit.record("fanout.resume", fanout.id)
    fanout_progress.advance(fanout)
    db.session.flush()
    return fanout


def open_baked_gates() -> int:
    """Maintenance: move on fan-outs whose bake time is over; returns how many."""
    due = db.session.execute(
        sa.select(Fanout.id).where(Fanout.gate == BAKING, Fanout.gate_until <= utcnow(),
                                   Fanout.completed_at.is_(None))
        .execution_options(all_tenants=True)).scalars().all()
    db.session.commit()
    for fanout_id in due:
        fanout = db.session.execute(
            db.select(Fanout).where(Fanout.id == fanout_id).with_for_update()
            .execution_options(populate_existing=True, all_tenants=True)).scalar_one_or_none()
        if fanout is not None and fanout.gate == BAKING and not fanout.done:
            fanout_progress.advance(fanout)
        db.session.commit()
    return len(due)


LATE_ERRORS = ("agent_lost", "agent_restarted")


def record_late_result(job: Job, data: dict[str, Any]) -> None:
    """A result for a job the hub already ended as lost: keep the first verdict (the
    lifecycle never moves a terminal job) and record the late one beside it."""
    if job.error not in LATE_ERRORS or job.late_result is not None:
        return
    job.late_result = {"status": data.get("status"), "exit_code": data.get("exit_code"),
                       "duration_ms": data.get("duration_ms"),
                       "received_at": _iso(utcnow())}
    db.session.flush()


def target_state(job: Job) -> str:
    """What happened to one target, honestly: not_started, never_delivered, lost, ..."""
    if job.status == JobStatus.PENDING.value:
        if job.held:
            return "waiting"
        return "delivered" if job.lease_expires_at else "queued"
    if job.status == JobStatus.CANCELLED.value and job.started_at is None:
        return "not_started"
    if job.status == JobStatus.EXPIRED.value:
        return "never_delivered"
    if job.error in LATE_ERRORS:
        return "lost_late_result" if job.late_result else "lost"
    return job.status


def rerun_targets(jobs: list[Job], only: list[str]) -> list[str]:
    """The agents whose job matches ``only`` (failed, not_started, cancelled, ...)."""
    chosen = []
    for job in jobs:
        state = target_state(job)
        wanted = (("failed" in only and job.status in FAILED_STATUSES)
                  or ("not_started" in only and state in ("not_started", "never_delivered"))
                  or ("cancelled" in only and job.status == JobStatus.CANCELLED.value)
                  or ("timeout" in only and job.status == JobStatus.TIMEOUT.value)
                  or ("lost" in only and job.error == "agent_lost"))
        if wanted and job.agent_name and job.agent_name not in chosen:
            chosen.append(job.agent_name)
    return chosen


def rerun(principal: Principal, fanout_id: str, only: list[str]) -> Any:
    """A new fan-out over just the chosen targets, same script and params (``rerun_of``)."""
    from orchestrator.services import fanout as fanouts  # noqa: PLC0415 - fanout imports us

    original = fanout_progress.get_fanout(fanout_id)
    jobs = list(db.session.execute(db.select(Job).where(Job.fanout_id == original.id)
                                   .order_by(Job.fanout_seq)).scalars())
    agents = rerun_targets(jobs, only)
    if not agents:
        raise ValidationFailed(f"No target of {fanout_id} matches {only}.",
                               error_code="no_targets", details={"only": only})
    work = ({"run_flow": original.script, "variables": dict(original.variables or {})}
            if original.kind == "flow" else {"run_script": original.script})
    data = {**work, "agents": agents, "params": dict(original.params or {}),
            "timeout": original.timeout, "webhook_url": original.webhook_url,
            "max_concurrency": original.max_concurrency, "max_errors": original.max_errors,
            **(original.job_options or {})}
    outcome = fanouts.build_fanout(principal, data, rerun_of=original.id)
    audit.record("fanout.rerun", original.id, rerun=outcome.fanout.id, only=only,
                 agents=agents)
    db.session.flush()
    return outcome
