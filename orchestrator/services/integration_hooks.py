"""What integrations do when a job ends: Git write-back, then automatic AI diagnosis.

``handle_job_finished`` is the ``integrations`` subscriber of ``job.finished``
(``orchestrator.subscribers``): an outbox row delivered by the worker once the
job's terminal state has committed.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.extensions import db
from orchestrator.services.ai import analysis
from orchestrator.services.git import writeback

log = logging.getLogger(__name__)


def reacts_to(payload: dict[str, Any]) -> bool:
    """Only jobs something may react to: Git-triggered ones (their key, or their
    fan-out's), and failures (automatic diagnosis); a plain success costs nothing."""
    git_run = (payload.get("idempotency_key") or "").startswith("git:") \
        or payload.get("fanout_id") is not None
    return git_run or payload["status"] in ("failed", "timeout")


def handle_job_finished(payload: dict[str, Any], _attempt: int = 1) -> None:
    """Each integration's reaction to a finished job; one failing spares the other."""
    job_id = payload["job_id"]
    for reaction in (writeback.handle_job_finished, analysis.handle_job_finished):
        try:
            reaction(job_id)
        except Exception:  # noqa: BLE001 - logged; the next reaction still runs
            db.session.rollback()
            log.exception("%s(%s) failed", reaction.__qualname__, job_id)
