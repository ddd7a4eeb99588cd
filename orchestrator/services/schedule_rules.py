"""Schedules over a fleet: whitelist checks, a fan-out per fire, the dead-man's switch,
pausing after repeated failures, missed fires and backfill.

- A schedule is refused at creation when a named agent (or every agent with
  its tags) does not whitelist its script (``check_whitelisted``).
- A schedule over tags or a list of agents creates one fan-out per fire
  (``start_fanout_run``), targets chosen by ``targeting`` like any fan-out.
- ``expect_success_every`` (seconds; ``"auto"``: the cron interval plus the
  misfire grace) raises ``schedule.missed`` once when no run succeeded in
  that window, whatever the cause; the next success raises
  ``schedule.recovered`` (``check_expected_successes``, run by maintenance;
  ``on_job_finished``, a ``job.finished`` subscriber).
- ``pause_after_failures: N`` disables the schedule after N consecutive
  failed runs (a user's cancel is not a failure) and records why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import (
    Agent,
    Fanout,
    FanoutStatus,
    Job,
    JobStatus,
    Schedule,
    ScheduleRun,
    Scope,
    utcnow,
)
from orchestrator.security import Principal
from orchestrator.services import audit, targeting
from orchestrator.services.events import record_event

FAILED_STATUSES = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value, JobStatus.EXPIRED.value)
MAX_BACKFILL = 100


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {message}",
                            details={"fields": {field_name: [message]}})


def check_whitelisted(schedule: Schedule) -> None:
    """422 when the schedule's agents cannot run its script (or flow)."""
    kind, name = schedule.kind or "script", schedule.script
    fleet = list(db.session.execute(db.select(Agent).order_by(Agent.name)).scalars())
    if schedule.agent or schedule.agents:
        field_name = "agent" if schedule.agent else "agents"
        by_name = {agent.name: agent for agent in fleet}
        for agent_name in [schedule.agent] if schedule.agent else schedule.agents:
            agent = by_name.get(agent_name)
            if agent is not None and not targeting.lists(agent, kind, name):
                raise _invalid(field_name, f"agent {agent_name!r} does not whitelist the "
                                           f"{kind} {name!r}")
    elif schedule.tags:
        matched, _ = targeting.match_agents(fleet, None, schedule.tags)
        if matched and not any(targeting.lists(agent, kind, name) for agent in matched):
            raise _invalid("tags", f"no agent with the tags {', '.join(schedule.tags)} "
                                   f"whitelists the {kind} {name!r}")


def fans_out(schedule: Schedule) -> bool:
    """Whether a fire creates a fan-out (tags or a list of agents)."""
    return bool(schedule.tags or schedule.agents)


def start_fanout_run(schedule: Schedule, fire_time: datetime, outcome: str, *,
                     idempotent: bool, check_overlap: bool) -> ScheduleRun:
    """One fire of a fleet schedule: one fan-out (the caller commits)."""
    from orchestrator.services import fanout  # noqa: PLC0415 - fanout -> ... -> scheduling

    run = ScheduleRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id,
                      fire_time=fire_time, outcome=outcome, job_ids=[])
    if check_overlap and schedule.overlap_policy == "skip" and _fanout_running(schedule):
        run.outcome, run.reason = "skipped", "the previous fan-out is still running"
        db.session.add(run)
        return run
    key = f"schedule:{schedule.id}:{fire_time:%Y%m%dT%H%M%SZ}" if idempotent else None
    existing = fanout.find_by_idempotency_key(key) if key else None
    try:
        created = (fanout.existing_outcome(existing) if existing else
                   fanout.build_fanout(_principal(schedule), fanout_request(schedule, key),
                                       schedule_id=schedule.id))
    except ValidationFailed as exc:
        run.outcome, run.reason = "failed", exc.description
    else:
        run.fanout_id = created.fanout.id
        run.job_ids = [job["job_id"] for job in created.jobs]
        skipped = created.fanout.skipped or []
        if skipped:
            run.reason = "; ".join(f"{s['agent']}: {s['reason']}" for s in skipped)
    db.session.add(run)
    return run


def fanout_request(schedule: Schedule, key: str | None) -> dict[str, Any]:
    """The ``POST /fanouts`` body a fire of ``schedule`` amounts to."""
    work = ({"run_flow": schedule.script, "variables": dict(schedule.variables or {})}
            if schedule.kind == "flow" else {"run_script": schedule.script})
    return {**work, "agents": schedule.agents, "tags": schedule.tags,
            "params": dict(schedule.params or {}), "timeout": schedule.timeout or 300,
            "webhook_url": schedule.webhook_url, "max_concurrency": schedule.max_concurrency,
            "max_errors": schedule.max_errors, "idempotency_key": key,
            **(schedule.job_options or {})}


def _principal(schedule: Schedule) -> Principal:
    return Principal(tenant_id=schedule.tenant_id, user_id=schedule.created_by or "scheduler",
                     scope=Scope.OPERATOR)


def _fanout_running(schedule: Schedule) -> bool:
    return db.session.execute(
        sa.select(Fanout.id).where(Fanout.schedule_id == schedule.id,
                                   Fanout.status == FanoutStatus.RUNNING.value).limit(1)
    ).first() is not None


def expected_window(schedule: Schedule, value: Any, cron: Any) -> int | None:
    """``expect_success_every`` in seconds; ``"auto"``: the cron interval plus the grace."""
    if value != "auto":
        return value
    first = cron.next_after(utcnow())
    return int((cron.next_after(first) - first).total_seconds()) + (
        schedule.misfire_grace_time or 0)


def check_expected_successes(now: datetime | None = None) -> int:
    """Maintenance: raise ``schedule.missed`` for schedules with no success in their window."""
    now = now or utcnow()
    schedules = db.session.execute(
        db.select(Schedule).where(Schedule.enabled.is_(True),
                                  Schedule.expect_success_every.is_not(None),
                                  Schedule.missed_since.is_(None))
        .execution_options(all_tenants=True)).scalars().all()
    raised = 0
    for schedule in schedules:
        last = last_success(schedule) or schedule.created_at
        window = timedelta(seconds=schedule.expect_success_every)
        if now - last <= window:
            continue
        schedule.missed_since = now
        db.session.add(ScheduleRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id,
                                   fire_time=now, outcome="missed", job_ids=[],
                                   reason=f"no successful run in {window} (expect_success_every)"))
        record_event(schedule.tenant_id, "schedule.missed", subject=schedule.id, payload={
            "schedule_id": schedule.id, "schedule": schedule.name or schedule.id,
            "script": schedule.script, "reason": "expect_success_every",
            "expect_success_every": schedule.expect_success_every,
            "last_success_at": last.isoformat().replace("+00:00", "Z")})
        raised += 1
    db.session.commit()
    return raised


def last_success(schedule: Schedule) -> datetime | None:
    return db.session.execute(
        sa.select(sa.func.max(Job.completed_at)).where(
            Job.schedule_id == schedule.id, Job.status == JobStatus.SUCCESS.value)
        .execution_options(all_tenants=True)).scalar()


def on_job_finished(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` (in the transaction) of a scheduled job: recovery and auto-pause."""
    schedule = db.session.get(Schedule, payload["schedule_id"])
    if schedule is None:
        return
    if payload["status"] == JobStatus.SUCCESS.value and schedule.missed_since is not None:
        schedule.missed_since = None
        record_event(schedule.tenant_id, "schedule.recovered", subject=schedule.id, payload={
            "schedule_id": schedule.id, "schedule": schedule.name or schedule.id,
            "script": schedule.script})
    if (schedule.pause_after_failures and schedule.enabled
            and payload["status"] in FAILED_STATUSES and payload.get("error") != "cancelled"):
        recent = db.session.execute(
            sa.select(Job.status, Job.error).where(
                Job.schedule_id == schedule.id,  # a user's cancel neither counts nor resets
                Job.status.in_((*FAILED_STATUSES, JobStatus.SUCCESS.value)))
            .order_by(Job.completed_at.desc(), Job.id.desc())
            .limit(schedule.pause_after_failures)).all()
        failures = [row for row in recent if row.status in FAILED_STATUSES]
        if len(failures) >= schedule.pause_after_failures:
            schedule.enabled, schedule.next_fire = False, None
            schedule.paused_reason = (f"paused after {schedule.pause_after_failures} "
                                      "consecutive failed runs (pause_after_failures)")
            audit.record("schedule.auto_pause", schedule.id, tenant_id=schedule.tenant_id,
                         actor="system", reason=schedule.paused_reason)


def list_missed(schedule: Schedule, limit: int = 100) -> list[ScheduleRun]:
    return list(db.session.execute(
        db.select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id,
                                     ScheduleRun.outcome == "missed")
        .order_by(ScheduleRun.id.desc()).limit(limit)).scalars())


def backfill_times(schedule: Schedule, cron: Any, start: datetime, end: datetime) -> list:
    """The cron fire times in [start, end] (at most ``MAX_BACKFILL``; 422 beyond)."""
    if end <= start:
        raise _invalid("to", "must be after from")
    times, moment = [], cron.next_after(start - timedelta(microseconds=1))
    while moment <= end:
        times.append(moment)
        if len(times) > MAX_BACKFILL:
            raise _invalid("to", f"more than {MAX_BACKFILL} fire times; narrow the range")
        moment = cron.next_after(moment)
    return times
