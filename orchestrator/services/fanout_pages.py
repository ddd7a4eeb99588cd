"""``fanout_report`` for pages that show a 1,000-job fan-out several times a second.

The same report, made by the same helpers (``summary``, ``stage_rows``,
``agent_row``, ``result_diff``), from plain column rows instead of ORM objects:
loading 1,000 full ``Job`` entities costs more than everything else on the page.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.extensions import db
from orchestrator.models import Job
from orchestrator.services.fanout_progress import get_fanout
from orchestrator.services.fanout_report import agent_row, result_diff, stage_rows, summary

#: What the report reads of each job (``agent_row`` and ``result_diff``'s attributes).
REPORT_COLUMNS = (Job.id, Job.agent_name, Job.status, Job.exit_code, Job.duration_ms,
                  Job.fanout_stage, Job.error, Job.held, Job.started_at, Job.completed_at,
                  Job.stdout)


def fanout_report_rows(fanout_id: str) -> dict[str, Any]:
    """Exactly ``fanout_report.fanout_report(fanout_id)``'s answer."""
    fanout = get_fanout(fanout_id)
    jobs = db.session.execute(
        db.select(*REPORT_COLUMNS).where(Job.fanout_id == fanout.id)
        .order_by(Job.fanout_seq)).all()
    counts = Counter(job.status for job in jobs)
    return {**summary(fanout, counts),
            "held": sum(1 for job in jobs if job.held and job.status == "pending"),
            "errors": sum(counts.get(s, 0) for s in ("failed", "timeout", "expired")),
            "selection": fanout.selection, "skipped": fanout.skipped or [],
            "stages": stage_rows(fanout, jobs), "agents": [agent_row(job) for job in jobs],
            "diff": result_diff(jobs)}
