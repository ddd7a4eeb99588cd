"""Periodic upkeep run by the one active scheduler: leases, offline agents, lost queues,
and fan-outs whose last finisher died before marking them complete.

``run_maintenance`` is idempotent and safe to call from any process (every
change is a conditional UPDATE); the scheduler calls it every few seconds
under its Redis leader lock. It needs an app context and no request: it
acts for every tenant.
"""

from __future__ import annotations

import logging
from datetime import datetime

from orchestrator.extensions import db
from orchestrator.models import utcnow
from orchestrator.security import purge_expired_revocations
from orchestrator.services import (
    agent_control,
    agents,
    fanout_progress,
    leases,
    rollout,
    schedule_rules,
    signup,
)

log = logging.getLogger(__name__)


def purge_revocations(now: datetime) -> int:
    """Forget revocations of tokens that expired anyway."""
    count = purge_expired_revocations(now)
    db.session.commit()
    return count


def run_maintenance() -> dict[str, int]:
    """Do one round of upkeep; return counts of what changed (for logs and tests)."""
    now = utcnow()
    try:
        counts = {
            "agents_offline": agents.mark_offline_agents(now),
            "jobs_expired": leases.expire_queued_jobs(now),
            "jobs_requeued": leases.requeue_unacknowledged(now),
            "jobs_lost": leases.fail_lost_jobs(now),
            "jobs_reconciled": leases.reconcile_lost_jobs(now),
            "fanouts_completed": fanout_progress.complete_finished_fanouts(),
            "signups_expired": signup.expire_unverified_signups(now),
            "revocations_purged": purge_revocations(now),
            "fanouts_baked": rollout.open_baked_gates(),
            "agents_drained": agent_control.finish_drains(),
            "agent_pauses_ended": agent_control.end_expired_pauses(now),
            "schedules_missed": schedule_rules.check_expected_successes(now),
        }
    finally:
        db.session.remove()
    changed = {name: count for name, count in counts.items() if count}
    if changed:
        log.info("maintenance: %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
    return counts
