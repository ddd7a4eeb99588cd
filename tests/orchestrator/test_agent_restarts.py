"""Liveness the agent reports: its heartbeat interval, and the jobs it no longer runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Agent, Job, utcnow
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def started_ago(app: Flask, job_id: str, seconds: float) -> None:
    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(
            started_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def test_the_reported_heartbeat_interval_sets_the_liveness_window(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent(register=False)
    assert sim.register(heartbeat_interval=2).status_code == 200
    job_id = ws.trigger_id()
    sim.take(job_id)
    with app.app_context():
        agent = db.session.execute(db.select(Agent)).scalar_one()
        job = db.session.get(Job, job_id)
        assert agent.heartbeat_interval == 2
        window = (agent.online_until - agent.last_heartbeat).total_seconds()
        assert window == 2 * app.config["OFFLINE_AFTER_MISSED"]
        lease = (job.lease_expires_at - utcnow()).total_seconds()
        assert lease <= max(window, app.config["LEASE_SECONDS"]) + 1


def test_a_registration_without_the_running_job_ends_it_as_agent_restarted(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    kept, lost = ws.trigger_id(), ws.trigger_id()
    sim.take(kept)
    sim.take(lost)
    assert sim.register(running_jobs=[kept]).status_code == 200
    assert ws.job(lost)["status"] == "failed" and ws.job(lost)["error"] == "agent_restarted"
    assert ws.job(kept)["status"] == "running"
    # A user's registration by hand says nothing about running jobs: nothing ends.
    assert sim.register().status_code == 200
    assert ws.job(kept)["status"] == "running"


def test_a_heartbeat_ends_only_jobs_started_before_its_list_was_taken(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent(register=False)
    assert sim.register(heartbeat_interval=5).status_code == 200
    old, fresh = ws.trigger_id(), ws.trigger_id()
    sim.take(old)
    sim.take(fresh)  # just acknowledged: may be missing from a list taken a moment ago
    started_ago(app, old, 6)
    assert sim.heartbeat(running=[], heartbeat_interval=5).status_code == 200
    assert ws.job(old)["error"] == "agent_restarted"
    assert ws.job(fresh)["status"] == "running"
