"""What integrations do when a job ends: Git write-back, then automatic AI diagnosis.

``handle_job_finished`` is the one subscriber to "job finished" for them; it
runs in the worker, after the job's terminal state is committed.
"""

from __future__ import annotations

import logging

from orchestrator.extensions import db
from orchestrator.models import Job
from orchestrator.services.post_commit import enqueue_after_commit
from orchestrator.tasks import task

log = logging.getLogger(__name__)


def queue_job_finished(job: Job) -> None:
    """Run ``handle_job_finished(job.id)`` in the worker once the caller commits.

    Only jobs something may react to are queued: Git-triggered ones (their key, or
    their fan-out's), and failures (automatic diagnosis); a plain success costs nothing.
    """
    git_run = (job.idempotency_key or "").startswith("git:") or job.fanout_id is not None
    if git_run or job.status in ("failed", "timeout"):
        enqueue_after_commit(handle_job_finished, job.id)


@task
def handle_job_finished(job_id: str) -> None:
    """RQ task: each integration's reaction to a finished job; one failing spares the other."""
    from orchestrator.services.ai import analysis
    from orchestrator.services.git import writeback

    for reaction in (writeback.handle_job_finished, analysis.handle_job_finished):
        try:
            reaction(job_id)
        except Exception:  # noqa: BLE001 - logged; the next reaction still runs
            db.session.rollback()
            log.exception("%s(%s) failed", reaction.__qualname__, job_id)
