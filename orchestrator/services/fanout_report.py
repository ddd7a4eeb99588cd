"""Reading fan-outs: the progress report with its per-agent result diff, and the list.

The diff groups a fan-out's agents by identical (status, exit_code, stdout),
shows each group's output once and puts the largest group first, so the odd
agents out stand out at a glance (seed 002: "first-class per-agent result
diffing").
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Fanout, Job, JobStatus
from orchestrator.services import rollout
from orchestrator.services.fanout_progress import OPEN_STATUSES, cancel_fanout, get_fanout
from orchestrator.services.jobs import decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ALL_STATUSES = tuple(s.value for s in JobStatus)


#: What the report reads of each job (``agent_row``, ``target_state`` and ``result_diff``):
#: plain column rows, since loading 1,000 full ``Job`` entities costs more than the rest.
REPORT_COLUMNS = (Job.id, Job.agent_name, Job.script, Job.status, Job.exit_code,
                  Job.duration_ms, Job.fanout_stage, Job.error, Job.held, Job.started_at,
                  Job.completed_at, Job.lease_expires_at, Job.late_result, Job.stdout)


def job_rows(fanout_id: str) -> list[Any]:
    """The fan-out's jobs in release order, as column rows (output included: the diff
    needs it)."""
    return list(db.session.execute(
        db.select(*REPORT_COLUMNS).where(Job.fanout_id == fanout_id)
        .order_by(Job.fanout_seq)).all())


def agent_row(job: Job) -> dict[str, Any]:
    return {"agent": job.agent_name, "job_id": job.id, "script": job.script, "status": job.status,
            "exit_code": job.exit_code, "duration_ms": job.duration_ms,
            "stage": job.fanout_stage, "error": job.error, "held": job.held,
            "started_at": job.started_at, "completed_at": job.completed_at,
            "state": rollout.target_state(job), "late_result": job.late_result}


def result_diff(jobs: list[Job]) -> list[dict[str, Any]]:
    """Agents grouped by identical (status, exit_code, stdout); largest group first."""
    groups: dict[tuple[str, int | None, str], dict[str, Any]] = {}
    for job in jobs:
        digest = hashlib.sha256((job.stdout or "").encode()).hexdigest()
        key = (job.status, job.exit_code, digest)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"status": job.status, "exit_code": job.exit_code,
                                   "stdout": job.stdout or "", "agents": []}
        group["agents"].append(job.agent_name)
    ordered = sorted(groups.values(), key=lambda g: (-len(g["agents"]), g["agents"][0] or ""))
    return [{"count": len(group["agents"]), **group} for group in ordered]


def stage_rows(fanout: Fanout, jobs: list[Job]) -> list[dict[str, Any]]:
    """Each canary stage: its agents, window, counts and state."""
    rows = []
    for index, plan in enumerate(fanout.stages or []):
        counts = Counter(job.status for job in jobs if (job.fanout_stage or 0) == index)
        size = sum(counts.values())
        if counts.get(JobStatus.SUCCESS.value, 0) == size:
            state = "succeeded"
        elif any(counts.get(s) for s in OPEN_STATUSES):
            state = "running" if index == fanout.current_stage else "waiting"
        elif counts.get(JobStatus.CANCELLED.value, 0) == size:
            state = "cancelled"
        else:
            state = "failed"
        rows.append({"stage": index, "agents": plan.get("agents", []),
                     "max_concurrency": plan.get("max_concurrency"),
                     "selector": plan.get("selector", {}), "state": state,
                     "counts": _all_counts(counts)})
    return rows


def _all_counts(counts: dict[str, int]) -> dict[str, int]:
    return {status: counts.get(status, 0) for status in ALL_STATUSES}


def summary(fanout: Fanout, counts: dict[str, int]) -> dict[str, Any]:
    """The fields both the list and the report show."""
    return {"fanout_id": fanout.id, "kind": fanout.kind, "script": fanout.script,
            "params": fanout.params, "variables": fanout.variables,
            "status": rollout.display_status(fanout), "done": fanout.done,
            "stop_reason": fanout.stop_reason,
            "total": fanout.total, "counts": _all_counts(counts),
            "max_concurrency": fanout.max_concurrency, "max_errors": fanout.max_errors,
            "current_stage": fanout.current_stage, "created_at": fanout.created_at,
            "completed_at": fanout.completed_at, "gate": fanout.gate,
            "gate_until": fanout.gate_until, "paused_at": fanout.paused_at,
            "rerun_of": fanout.rerun_of, "schedule_id": fanout.schedule_id}


def fanout_report(fanout_id: str) -> dict[str, Any]:
    """GET /fanouts/{id}: counts, done flag, stages, per-agent rows and the result diff."""
    fanout = get_fanout(fanout_id)
    jobs = job_rows(fanout.id)
    counts = Counter(job.status for job in jobs)
    return {**summary(fanout, counts),
            "held": sum(1 for job in jobs if job.held and job.status == "pending"),
            "errors": sum(counts.get(s, 0) for s in ("failed", "timeout", "expired")),
            "selection": fanout.selection, "skipped": fanout.skipped or [],
            "stages": stage_rows(fanout, jobs), "agents": [agent_row(job) for job in jobs],
            "diff": result_diff(jobs)}


def cancel_and_report(fanout_id: str) -> dict[str, Any]:
    """Cancel the fan-out's unfinished jobs (``fanout_progress.cancel_fanout``), then report."""
    cancel_fanout(fanout_id)
    return fanout_report(fanout_id)


def list_fanouts(args: dict[str, Any]) -> dict[str, Any]:
    """A page of the tenant's fan-outs, newest first (``cursor`` = a page's ``next_cursor``)."""
    query = db.select(Fanout)
    if args.get("status"):
        query = query.where(Fanout.status == args["status"])
    if args.get("script"):
        query = query.where(Fanout.script == args["script"])
    if args.get("cursor"):
        created, fanout_id = decode_cursor(args["cursor"])
        query = query.where(sa.or_(Fanout.created_at < created, sa.and_(
            Fanout.created_at == created, Fanout.id < fanout_id)))
    limit = min(max(int(args.get("limit") or DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    rows = list(db.session.execute(
        query.order_by(Fanout.created_at.desc(), Fanout.id.desc()).limit(limit + 1)).scalars())
    page = rows[:limit]
    counts = page_counts([fanout.id for fanout in page])
    return {"fanouts": [summary(fanout, counts.get(fanout.id, {})) for fanout in page],
            "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None}


def page_counts(fanout_ids: list[str]) -> dict[str, dict[str, int]]:
    """Job counts by status for each fan-out of a page, in one query."""
    if not fanout_ids:
        return {}
    found: dict[str, dict[str, int]] = {}
    for fanout_id, status, n in db.session.execute(
            sa.select(Job.fanout_id, Job.status, sa.func.count())
            .where(Job.fanout_id.in_(fanout_ids)).group_by(Job.fanout_id, Job.status)):
        found.setdefault(fanout_id, {})[status] = n
    return found

