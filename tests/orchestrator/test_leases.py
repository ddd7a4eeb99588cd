"""Leases and maintenance: requeue, agent_lost, queue_ttl expiry, reconcile after Redis loss."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Event, Job, utcnow
from orchestrator.services.maintenance import run_maintenance
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def expire(app: Flask, job_id: str, column: str = "lease_expires_at") -> None:
    """Move a job's lease (or queue_ttl expiry) into the past, as if time had passed."""
    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == job_id)
                           .values({column: utcnow() - timedelta(seconds=1)}))
        db.session.commit()


def stored(app: Flask, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def maintain(app: Flask) -> dict[str, int]:
    with app.app_context():
        return run_maintenance()


def event_types(app: Flask, job_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.execute(
            db.select(Event.type).where(Event.subject == job_id)).scalars())


def test_unacknowledged_job_goes_back_to_the_queue(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    assert sim.poll_jobs()[0]["job_id"] == job_id
    assert maintain(app)["jobs_requeued"] == 0, "the lease still runs"
    expire(app, job_id)
    assert maintain(app)["jobs_requeued"] == 1
    again = sim.poll_jobs()
    assert [j["job_id"] for j in again] == [job_id]
    assert stored(app, job_id).dispatch_count == 2
    assert sim.start(job_id).status_code == 200


def test_late_start_after_requeue_race_is_safe(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.poll_jobs()
    expire(app, job_id)
    maintain(app)
    assert sim.start(job_id).status_code == 409, "requeued: the old lease is gone"
    assert sim.poll_jobs()[0]["job_id"] == job_id


def test_running_lease_is_the_agents_liveness_window(app: Flask, ws: Workspace) -> None:
    app.config.update(HEARTBEAT_INTERVAL=60, OFFLINE_AFTER_MISSED=3, LEASE_SECONDS=30)
    sim = ws.agent()
    job_id = ws.trigger_id()
    lease = sim.poll_jobs()[0]["lease_expires_at"]
    assert lease
    sim.start(job_id)
    job = stored(app, job_id)
    seconds = (job.lease_expires_at - utcnow()).total_seconds()
    assert 170 < seconds <= 180, "running: 3 x 60 s heartbeat interval, not the 30 s lease"


def test_heartbeats_and_output_renew_running_leases(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    expire(app, job_id)
    sim.heartbeat([job_id])
    assert maintain(app)["jobs_lost"] == 0
    expire(app, job_id)
    sim.output(job_id, stdout=(0, "still here\n"))
    assert maintain(app)["jobs_lost"] == 0
    assert stored(app, job_id).status == "running"


def test_silent_agent_fails_its_running_job_as_agent_lost(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    expire(app, job_id)
    assert maintain(app)["jobs_lost"] == 1
    job = ws.job(job_id)
    assert job["status"] == "failed" and job["error"] == "agent_lost"
    assert job["completed_at"]
    assert event_types(app, job_id) == ["job.failed"]
    assert sim.result(job_id, "success").status_code == 200
    assert ws.job(job_id)["status"] == "failed", "never silently re-decided"
    assert sim.heartbeat([job_id]).json["commands"] == [{"type": "cancel", "job_id": job_id}]
    assert sim.poll_jobs() == [], "and never silently re-run"


def test_queue_ttl_expires_waiting_jobs(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id(queue_ttl=60)
    kept = ws.trigger_id()
    expire(app, job_id, "expires_at")
    assert maintain(app)["jobs_expired"] == 1
    job = ws.job(job_id)
    assert job["status"] == "expired" and "queue_ttl" in job["error"]
    assert event_types(app, job_id) == ["job.expired"]
    assert [j["job_id"] for j in sim.poll_jobs(max_jobs=5)] == [kept]


def test_pending_jobs_survive_a_redis_flush(app: Flask, ws: Workspace, redis_url: str) -> None:
    sim = ws.agent()
    job_ids = [ws.trigger_id() for _ in range(2)]
    redis.Redis.from_url(redis_url).flushdb()
    assert sim.poll_jobs() == []
    assert maintain(app)["jobs_reconciled"] == 0, "young jobs are left to their enqueue"
    with app.app_context():
        db.session.execute(sa.update(Job).values(created_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert maintain(app)["jobs_reconciled"] == 2
    assert maintain(app)["jobs_reconciled"] == 0, "present again: nothing to do"
    assert sorted(j["job_id"] for j in sim.poll_jobs(max_jobs=5)) == sorted(job_ids)


def test_concurrent_maintenance_changes_each_job_once(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_ids = [ws.trigger_id() for _ in range(4)]
    for assignment in sim.poll_jobs(max_jobs=4):
        sim.start(assignment["job_id"])
    for job_id in job_ids:
        expire(app, job_id)
    totals: list[int] = []

    def run() -> None:
        with app.app_context():
            totals.append(run_maintenance()["jobs_lost"])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(totals) == 4
    for job_id in job_ids:
        assert event_types(app, job_id) == ["job.failed"]
