"""Cron schedules: CRUD, and firing each due time exactly once however many schedulers run.

Firing claims a fire time with a conditional UPDATE (``next_fire = :due`` ->
the next time) in the same transaction that creates the job, so of two
schedulers racing for one due time exactly one creates the job; the other
updates no row and backs off. A second net: each scheduled job carries the
idempotency key ``schedule:<id>:<fire time>:<agent>``, unique per tenant.

A fire time found late (the scheduler was down) runs if it is within the
schedule's ``misfire_grace_time``; older ones are recorded as ``missed`` and
announced as one ``schedule.missed`` event. With ``coalesce`` several due
times that are still in grace run once. ``overlap_policy = "skip"`` records
a skip instead of starting a job while the schedule's previous job on that
agent is still pending or running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, g

from orchestrator.errors import NotFound, ScriptMeshError, ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import Job, JobStatus, Schedule, ScheduleRun, Scope, utcnow
from orchestrator.security import Principal
from orchestrator.services import (
    agent_control,
    agents,
    audit,
    dispatch,
    locks,
    outbound,
    pools,
    schedule_rules,
)
from orchestrator.services import params as script_params
from orchestrator.services.cron import CronError, CronSchedule, parse_cron
from orchestrator.services.events import record_event
from orchestrator.tenancy import current_tenant_id

log = logging.getLogger(__name__)

DEFAULT_MISFIRE_GRACE_TIME = 300
DEFAULT_JOB_TIMEOUT = 300
#: At most this many past fire times are enumerated (and recorded) per detection.
MAX_CATCH_UP = 100
#: At most this many due schedules are fired per scheduler tick.
MAX_DUE_PER_TICK = 500
TARGET_FIELDS = ("agent", "agents", "tags", "pool")
NULLABLE_FIELDS = ("name", "webhook_url", "timeout")
OPEN_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {message}",
                            details={"fields": {field_name: [message]}})


def compile_schedule(expression: str, timezone: str) -> CronSchedule:
    """Parse a schedule's cron expression; 422 naming the bad field otherwise."""
    try:
        return parse_cron(expression, timezone)
    except CronError as exc:
        raise _invalid(exc.field, exc.message) from None


def _validate(schedule: Schedule) -> CronSchedule:
    targets = [name for name in TARGET_FIELDS if getattr(schedule, name)]
    if len(targets) != 1:
        raise _invalid("agent", "give exactly one target: agent, agents, tags or pool")
    for name in [schedule.agent] if schedule.agent else (schedule.agents or []):
        if agents.find_agent(name) is None:
            raise _invalid("agent" if schedule.agent else "agents",
                           f"no agent named {name!r} is registered")
    script_params.validate_schedule(schedule, agents.list_agents())
    if schedule.webhook_url:
        try:
            outbound.check_target(schedule.webhook_url)
        except outbound.BlockedTarget as exc:
            raise _invalid("webhook_url", str(exc)) from None
    schedule_rules.check_whitelisted(schedule)
    cron = compile_schedule(schedule.cron_expression, schedule.timezone)
    schedule.expect_success_every = schedule_rules.expected_window(
        schedule, schedule.expect_success_every, cron)
    return cron


def create_schedule(principal: Principal, data: dict[str, Any]) -> Schedule:
    """Validate and store a schedule; its first fire time is computed from now."""
    schedule = Schedule(tenant_id=principal.tenant_id, created_by=principal.user_id,
                        params={}, overlap_policy="skip", coalesce=True, enabled=True,
                        misfire_grace_time=DEFAULT_MISFIRE_GRACE_TIME, timezone="UTC")
    _apply(schedule, data)
    cron = _validate(schedule)
    schedule.next_fire = cron.next_after(utcnow()) if schedule.enabled else None
    db.session.add(schedule)
    db.session.flush()
    audit.record("schedule.create", schedule.id, script=schedule.script,
                 cron_expression=schedule.cron_expression)
    db.session.commit()
    return schedule


def _apply(schedule: Schedule, data: dict[str, Any]) -> None:
    """Copy request fields; naming any target (or what to run) replaces the whole of it."""
    data = dict(data)
    options = {name: data.pop(name) for name in locks.OPTION_FIELDS if name in data}
    if options:
        schedule.job_options = {**(schedule.job_options or {}), **options}
    if "script" in data and "run_flow" in data:
        raise _invalid("run_flow", "give either script or run_flow, not both")
    if "run_flow" in data:
        schedule.kind, data["script"] = "flow", data.pop("run_flow")
    elif "script" in data:
        schedule.kind, schedule.variables = "script", None
    if any(name in data for name in TARGET_FIELDS):
        for name in TARGET_FIELDS:
            setattr(schedule, name, data.get(name) or None)
    for name, value in data.items():
        if name in TARGET_FIELDS or (value is None and name not in NULLABLE_FIELDS):
            continue
        setattr(schedule, name, value)
    if not schedule.script:
        raise _invalid("script", "give the script (or run_flow) to run")
    if schedule.kind != "flow" and schedule.variables:
        raise _invalid("variables", "variables go with run_flow; scripts take params")


def list_schedules(limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    """The caller's schedules by id, a page at a time (``next_cursor`` is the last id)."""
    query = db.select(Schedule).order_by(Schedule.id).limit(limit + 1)
    if cursor:
        query = query.where(Schedule.id > cursor)
    rows = list(db.session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"schedules": rows, "next_cursor": rows[-1].id if more else None}


def get_schedule(schedule_id: str) -> Schedule:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"No schedule {schedule_id}.", error_code="schedule_not_found")
    return schedule


def update_schedule(schedule_id: str, data: dict[str, Any]) -> Schedule:
    """Change a schedule; a new expression, zone or re-enabling recomputes ``next_fire``."""
    schedule = get_schedule(schedule_id)
    was_enabled = schedule.enabled
    _apply(schedule, data)
    cron = _validate(schedule)
    timing = {"cron_expression", "timezone"} & set(data)
    if not schedule.enabled:
        schedule.next_fire = None
    elif timing or not was_enabled or schedule.next_fire is None:
        schedule.next_fire = cron.next_after(utcnow())
    if schedule.enabled:
        schedule.paused_reason = None
    audit.record("schedule.update", schedule.id, fields=sorted(data))
    db.session.commit()
    return schedule


def delete_schedule(schedule_id: str) -> None:
    """Delete a schedule and its run records (its jobs stay)."""
    schedule = get_schedule(schedule_id)
    audit.record("schedule.delete", schedule.id)
    db.session.execute(sa.delete(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id))
    db.session.delete(schedule)
    db.session.commit()


def pause_schedule(schedule_id: str) -> Schedule:
    return update_schedule(schedule_id, {"enabled": False})


def resume_schedule(schedule_id: str) -> Schedule:
    """Enable again; fire times passed while paused are not missed fires."""
    return update_schedule(schedule_id, {"enabled": True})


def list_runs(schedule_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest fire records of a schedule, each with its jobs' current status."""
    schedule = get_schedule(schedule_id)
    runs = list(db.session.execute(
        db.select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
        .order_by(ScheduleRun.id.desc()).limit(limit)).scalars())
    job_ids = [job_id for run in runs for job_id in run.job_ids or []]
    jobs = {job.id: job for job in db.session.execute(
        db.select(Job).where(Job.id.in_(job_ids))).scalars()} if job_ids else {}
    return [{"id": run.id, "fire_time": run.fire_time, "outcome": run.outcome,
             "reason": run.reason, "created_at": run.created_at, "fanout_id": run.fanout_id,
             "jobs": [_job_brief(jobs.get(job_id), job_id) for job_id in run.job_ids or []]}
            for run in runs]


def _job_brief(job: Job | None, job_id: str) -> dict[str, Any]:
    if job is None:
        return {"job_id": job_id, "agent": None, "status": None, "exit_code": None}
    return {"job_id": job.id, "agent": job.agent_name, "status": job.status,
            "exit_code": job.exit_code}


def run_now(schedule_id: str) -> ScheduleRun:
    """Start the schedule's job(s) now, outside its timetable (overlap is not checked)."""
    schedule = get_schedule(schedule_id)
    run = start_run(schedule, utcnow(), "manual", check_overlap=False)
    db.session.commit()
    return run


def missed_runs(schedule_id: str) -> list[ScheduleRun]:
    """Fire times recorded as missed (scheduler down, or no success in the window)."""
    return schedule_rules.list_missed(get_schedule(schedule_id))


def backfill(schedule_id: str, start: datetime, end: datetime) -> list[ScheduleRun]:
    """Run the fire times of [start, end] now, once each (repeating a backfill runs nothing
    twice: each fire time keeps its idempotency key)."""
    schedule = get_schedule(schedule_id)
    cron = compile_schedule(schedule.cron_expression, schedule.timezone)
    runs = [start_run(schedule, moment, "backfill", idempotent=True, check_overlap=False)
            for moment in schedule_rules.backfill_times(schedule, cron, start, end)]
    audit.record("schedule.backfill", schedule.id, runs=len(runs),
                 **{"from": start.isoformat(), "to": end.isoformat()})
    db.session.commit()
    return runs


# -- firing -----------------------------------------------------------------------------


@dataclass
class FirePlan:
    """What to do about a schedule whose ``next_fire`` has passed."""

    run_times: list[datetime]
    missed: list[datetime]
    coalesced: list[datetime]
    next_fire: datetime
    #: True when more fire times were missed than were enumerated (``MAX_CATCH_UP``).
    more_missed: bool = False
    notes: list[str] = field(default_factory=list)


def plan_fires(schedule: Schedule, now: datetime) -> FirePlan:
    """Split the due fire times into run (within grace), missed and coalesced ones."""
    cron = compile_schedule(schedule.cron_expression, schedule.timezone)
    grace = timedelta(seconds=schedule.misfire_grace_time or 0)
    due: list[datetime] = []
    moment = schedule.next_fire
    while moment <= now and len(due) < MAX_CATCH_UP:
        due.append(moment)
        moment = cron.next_after(moment)
    more_missed = moment <= now
    if more_missed:  # skip the rest, but still find the times inside the grace window
        moment = cron.next_after(max(now - grace, due[-1]))
        while moment <= now:
            due.append(moment)
            moment = cron.next_after(moment)
    runnable = [t for t in due if now - t <= grace]
    missed = [t for t in due if now - t > grace]
    coalesced: list[datetime] = []
    if schedule.coalesce and len(runnable) > 1:
        coalesced, runnable = runnable[:-1], runnable[-1:]
    return FirePlan(runnable, missed, coalesced, moment, more_missed)


def fire_due_schedules(now: datetime | None = None) -> dict[str, int]:
    """Fire every enabled schedule whose ``next_fire`` has come (the scheduler's periodic task).

    Safe to run in several processes at once: see the module docstring.
    :returns: counts by outcome, for logs and tests.
    """
    now = now or utcnow()
    due = db.session.execute(
        db.select(Schedule.id, Schedule.next_fire)
        .where(Schedule.enabled.is_(True), Schedule.next_fire <= now)
        .order_by(Schedule.next_fire).limit(MAX_DUE_PER_TICK)
    ).all()
    db.session.rollback()  # end the read; each schedule gets its own transaction
    counts: dict[str, int] = {}
    for schedule_id, next_fire in due:
        try:
            outcome = fire_schedule(schedule_id, next_fire, now)
        except sa.exc.OperationalError as exc:  # e.g. SQLite busy: another scheduler writes
            db.session.rollback()
            log.warning("schedule %s not fired this tick: %s", schedule_id, type(exc).__name__)
            outcome = "busy"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def fire_schedule(schedule_id: str, expected: datetime, now: datetime) -> str:
    """Claim ``expected`` for this process and act on it; "lost" when another one did."""
    schedule = db.session.get(Schedule, schedule_id, populate_existing=True)
    if schedule is None or not schedule.enabled or schedule.next_fire != expected:
        db.session.rollback()
        return "lost"
    try:
        plan = plan_fires(schedule, now)
    except ValidationFailed:  # an expression that no longer parses: stop firing it
        _claim(schedule.id, expected, None, now)
        db.session.commit()
        log.error("schedule %s disabled: its cron expression is invalid", schedule_id)
        return "invalid"
    if not _claim(schedule.id, expected, plan.next_fire, now):
        db.session.rollback()
        return "lost"
    _record_misses(schedule, plan)
    for moment in plan.run_times:
        start_run(schedule, moment, "fired", idempotent=True)
    db.session.commit()
    return "fired" if plan.run_times else "missed"


def _claim(schedule_id: str, expected: datetime, next_fire: datetime | None,
           now: datetime) -> bool:
    """The conditional UPDATE that makes this process the one firing ``expected``."""
    values: dict[str, Any] = {"next_fire": next_fire, "last_fire_at": now}
    if next_fire is None:
        values["enabled"] = False
    result = db.session.execute(
        sa.update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.next_fire == expected,
               Schedule.enabled.is_(True))
        .values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _record_misses(schedule: Schedule, plan: FirePlan) -> None:
    for moment in plan.coalesced:
        db.session.add(ScheduleRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id,
                                   fire_time=moment, outcome="coalesced", job_ids=[],
                                   reason="ran once with a later due time (coalesce)"))
    if not plan.missed:
        return
    reason = (f"the scheduler was not running; more than {schedule.misfire_grace_time}s "
              "late (misfire_grace_time)")
    for moment in plan.missed:
        db.session.add(ScheduleRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id,
                                   fire_time=moment, outcome="missed", job_ids=[],
                                   reason=reason))
    record_event(schedule.tenant_id, "schedule.missed", subject=schedule.id, payload={
        "schedule_id": schedule.id, "schedule": schedule.name or schedule.id,
        "script": schedule.script, "agent": schedule.agent,
        "missed": len(plan.missed), "more_missed": plan.more_missed,
        "first_fire_time": _iso(plan.missed[0]), "last_fire_time": _iso(plan.missed[-1]),
    })
    log.warning("schedule %s: %d fire time(s) missed", schedule.id, len(plan.missed))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def start_run(schedule: Schedule, fire_time: datetime, outcome: str, *,
              idempotent: bool = False, check_overlap: bool = True) -> ScheduleRun:
    """Create the schedule's job(s) for one fire time and record the run (caller commits)."""
    if schedule_rules.fans_out(schedule):  # tags or a list: one fan-out per fire
        with acting_for_tenant(schedule.tenant_id):
            return schedule_rules.start_fanout_run(schedule, fire_time, outcome,
                                                   idempotent=idempotent,
                                                   check_overlap=check_overlap)
    created: list[str] = []
    notes: list[str] = []
    skipped = 0
    with acting_for_tenant(schedule.tenant_id):
        for agent_name in target_agents(schedule, notes):
            where = agent_name or f"pool {schedule.pool}"
            if (check_overlap and schedule.overlap_policy == "skip"
                    and _previous_job_open(schedule, agent_name)):
                notes.append(f"{where}: skipped, the previous job is still running")
                skipped += 1
                continue
            try:
                created.append(_start_job(schedule, agent_name, fire_time, idempotent))
            except ScriptMeshError as exc:
                notes.append(f"{where}: {exc.description}")
    if not created:
        outcome = "skipped" if skipped and skipped == len(notes) else "failed"
    run = ScheduleRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id,
                      fire_time=fire_time, outcome=outcome, job_ids=created,
                      reason="; ".join(notes) or None)
    db.session.add(run)
    return run


def target_agents(schedule: Schedule, notes: list[str]) -> list[str | None]:
    """The one agent a fire targets (schedules over several fan out: ``schedule_rules``).

    A pool schedule has one target, ``None``: its job goes to the pool's queue.
    A paused or draining agent gets nothing (``agent_control``).
    """
    if schedule.pool:
        return [None]
    agent = agents.find_agent(schedule.agent)
    if agent is not None and agent_control.refuses_work(agent):
        notes.append(f"{schedule.agent}: skipped, the agent is paused or draining")
        return []
    return [schedule.agent]


def _previous_job_open(schedule: Schedule, agent_name: str | None) -> bool:
    target = Job.pool == schedule.pool if agent_name is None else Job.agent_name == agent_name
    return db.session.execute(
        db.select(Job.id).where(Job.schedule_id == schedule.id, target,
                                Job.status.in_(OPEN_STATUSES)).limit(1)
    ).first() is not None


def _start_job(schedule: Schedule, agent_name: str | None, fire_time: datetime,
               idempotent: bool) -> str:
    """Create one job through the dispatch layer (which validates agent and manifest)."""
    principal = Principal(tenant_id=schedule.tenant_id,
                          user_id=schedule.created_by or "scheduler", scope=Scope.OPERATOR)
    target = {"agent": agent_name} if agent_name else {"pool": schedule.pool}
    key = (f"schedule:{schedule.id}:{fire_time:%Y%m%dT%H%M%SZ}:{agent_name or 'pool'}"[:200]
           if idempotent else None)
    work = ({"run_flow": schedule.script, "variables": dict(schedule.variables or {})}
            if schedule.kind == "flow" else
            {"run_script": schedule.script, "params": dict(schedule.params or {})})
    data = {**target, **work, "async_exec": True,
            "timeout": schedule.timeout or DEFAULT_JOB_TIMEOUT,
            "webhook_url": schedule.webhook_url, "idempotency_key": key,
            **(schedule.job_options or {})}
    trigger = dispatch.trigger_script if agent_name else pools.trigger_pool
    return trigger(principal, data, schedule_id=schedule.id).job.id


@contextmanager
def acting_for_tenant(tenant_id: str) -> Iterator[None]:
    """Run code that relies on the request tenant filter on behalf of ``tenant_id``.

    Background work has no request; the dispatch layer looks agents up by name
    through the tenant filter, so a request context carrying the schedule's
    tenant is pushed (it shares the current app context and session).
    """
    if current_tenant_id() == tenant_id:
        yield
        return
    with current_app.test_request_context("/internal/scheduler"):
        previous = g.get("tenant_id")
        g.tenant_id = tenant_id
        try:
            yield
        finally:
            g.tenant_id = previous
