"""Jobs an agent no longer runs: ended at once (``agent_restarted``) when it says so.

A registration or heartbeat lists the jobs the agent still owns (running, or
their result spooled and not yet delivered). A job the hub has ``running`` on
that agent but the agent does not list was lost with an earlier agent process
(killed, restarted): waiting for its lease to lapse would only delay the news.

A heartbeat's list is taken before the request is sent, so a job whose start
was acknowledged meanwhile may be missing from it: heartbeats only end jobs
started more than one heartbeat interval ago. A registration comes from a
fresh process (or re-registers with its full list), so it ends them all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Agent, Job, JobStatus, utcnow
from orchestrator.services import lifecycle

log = logging.getLogger(__name__)

AGENT_RESTARTED = lifecycle.AGENT_RESTARTED


def end_unlisted_jobs(agent: Agent, listed: Iterable[str], *, registering: bool,
                      interval: float, now: datetime | None = None) -> list[str]:
    """Fail ``agent``'s running jobs missing from ``listed`` (the caller commits).

    :param interval: the agent's heartbeat interval in seconds (the heartbeat guard).
    """
    if agent.id is None or sa.inspect(agent).pending:
        return []
    now = now or utcnow()
    still = [Job.agent_id == agent.id, Job.status == JobStatus.RUNNING.value]
    listed = list(listed)
    if listed:
        still.append(Job.id.not_in(listed))
    if not registering:
        still.append(Job.started_at < now - timedelta(seconds=interval))
    ended = []
    for job in db.session.execute(db.select(Job).where(*still)).scalars().all():
        if lifecycle.finish_job(job, JobStatus.FAILED.value, *still, error=AGENT_RESTARTED,
                                completed_at=now):
            log.warning("job %s: agent %s %s without it; failed as agent_restarted",
                        job.id, agent.name, "registered" if registering else "heartbeat")
            ended.append(job.id)
    return ended
