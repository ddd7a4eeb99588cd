"""Fleet and execution metrics for ``GET /metrics/json`` (the caller's tenant only)."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Job, JobStatus, utcnow
from orchestrator.services import agent_queues, agents

#: Latency and duration percentiles are computed over this many most recent jobs.
RECENT_JOBS = 1000
PERCENTILES = (50, 95, 99)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    summary: dict[str, Any] = {"count": len(ordered)}
    for p in PERCENTILES:
        value = percentile(ordered, p)
        summary[f"p{p}"] = None if value is None else round(value)
    return summary


def collect_metrics() -> dict[str, Any]:
    """Agents online/offline, jobs by status, queue depths and latency percentiles."""
    now = utcnow()
    fleet = agents.list_agents()
    online = sum(1 for agent in fleet if agents.is_online(agent, now))
    by_status = dict.fromkeys((s.value for s in JobStatus), 0)
    for status, count in db.session.execute(
            db.select(Job.status, sa.func.count()).group_by(Job.status)):
        by_status[status] = count
    depths = agent_queues.queue_depths(agent_queues.agent_queue_name(a.id) for a in fleet)
    recent = db.session.execute(
        db.select(Job.created_at, Job.started_at, Job.duration_ms)
        .where(Job.started_at.is_not(None))
        .order_by(Job.started_at.desc()).limit(RECENT_JOBS)
    ).all()
    latencies = [(started - created).total_seconds() * 1000 for created, started, _ in recent]
    durations = [float(ms) for _, _, ms in recent if ms is not None]
    return {
        "agents": {"total": len(fleet), "online": online, "offline": len(fleet) - online},
        "jobs": {"total": sum(by_status.values()), "by_status": by_status},
        "queues": {agent.name: depth for agent, depth in zip(fleet, depths, strict=True)},
        "dispatch_latency_ms": summarize(latencies),
        "run_duration_ms": summarize(durations),
        "generated_at": now,
    }
