"""Fleet rules through the Flask test client and the agent simulator: late results after
agent_lost, honest target states, lock/limit validation, schedule rules' input errors."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Agent
from orchestrator.models import utcnow as now
from tests.orchestrator.agent_sim import Workspace, workspace
from tests.orchestrator.test_leases import event_types, expire, maintain


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def test_a_result_after_agent_lost_is_kept_beside_the_first_verdict(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    created = ws.client.post("/fanouts", headers=ws.headers,
                             json={"agents": ["agent-1"], "run_script": "hello.sh"})
    assert created.status_code == 202, created.json
    job_id = created.json["jobs"][0]["job_id"]
    sim.take(job_id)
    expire(app, job_id)
    assert maintain(app)["jobs_lost"] == 1
    assert sim.result(job_id, "success", exit_code=0).status_code == 200
    job = ws.job(job_id)
    assert job["status"] == "failed" and job["error"] == "agent_lost"
    assert job["late_result"]["status"] == "success" and job["late_result"]["exit_code"] == 0
    assert event_types(app, job_id) == ["job.failed"], "the first verdict stands"
    report = ws.client.get(f"/fanouts/{created.json['fanout_id']}", headers=ws.headers).json
    assert report["agents"][0]["state"] == "lost_late_result"
    assert report["agents"][0]["late_result"]["status"] == "success"


def test_lock_fields_and_schedule_rules_are_validated(ws: Workspace) -> None:
    ws.agent()
    bad = ws.trigger(concurrency_group="db")
    assert bad.status_code == 422 and "concurrency_limit" in str(bad.json["error"]["details"])
    bad = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 2 * * *",
        "expect_success_every": "soon"})
    assert bad.status_code == 422 and "expect_success_every" in str(bad.json["error"])
    made = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 2 * * *",
        "expect_success_every": "auto", "pause_after_failures": 2, "lock": "nightly"})
    assert made.status_code == 201, made.json
    assert made.json["expect_success_every"] == 86400 + 300  # a day plus the grace
    assert made.json["job_options"]["lock"] == "nightly"


def test_pause_after_failures_pauses_and_says_why_but_a_cancel_never_counts(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    made = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 2 * * *",
        "pause_after_failures": 2}).json
    run = ws.client.post(f"/schedules/{made['id']}/run-now", headers=ws.headers).json
    sim.take(run["job_ids"][0])
    sim.result(run["job_ids"][0], "failed", exit_code=1)
    cancelled = ws.client.post(f"/schedules/{made['id']}/run-now", headers=ws.headers).json
    ws.client.post(f"/jobs/{cancelled['job_ids'][0]}/cancel", headers=ws.headers)
    schedule = ws.client.get(f"/schedules/{made['id']}", headers=ws.headers).json
    assert schedule["enabled"] is True, "one failure and a cancel: not yet"
    run = ws.client.post(f"/schedules/{made['id']}/run-now", headers=ws.headers).json
    sim.take(run["job_ids"][0])
    sim.result(run["job_ids"][0], "failed", exit_code=1)
    schedule = ws.client.get(f"/schedules/{made['id']}", headers=ws.headers).json
    assert schedule["enabled"] is False and "2 consecutive" in schedule["paused_reason"]


def test_drain_pauses_then_deregisters_once_idle(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    running = ws.trigger_id()
    sim.take(running)
    drained = ws.client.post("/agents/agent-1/drain", headers=ws.headers, json={"note": "bye"})
    assert drained.status_code == 200 and drained.json["paused"] is True
    assert drained.json["drain_requested_at"]
    waiting = ws.trigger_id()
    assert sim.poll_jobs() == [], "a draining agent gets nothing new"
    assert maintain(app)["agents_drained"] == 0, "still running a job"
    sim.result(running, "success", exit_code=0)
    assert maintain(app)["agents_drained"] == 1
    assert ws.client.get("/agents/agent-1", headers=ws.headers).status_code == 404
    assert ws.job(waiting)["error"] == "agent_deregistered"


def test_a_pause_with_until_ends_by_itself_and_the_refused_job_runs(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    until = "2020-01-01T00:00:00Z"  # already over: the next upkeep ends the pause
    paused = ws.client.post("/agents/agent-1/pause", headers=ws.headers, json={"until": until})
    assert paused.status_code == 200
    with app.app_context():
        agent = db.session.execute(db.select(Agent).execution_options(all_tenants=True)
                                   ).scalar_one()
        agent.paused_until = now().replace(year=now().year + 1)  # pause for real first
        db.session.commit()
    job_id = ws.trigger_id()
    assert sim.poll_jobs() == []
    with app.app_context():
        agent = db.session.execute(db.select(Agent).execution_options(all_tenants=True)
                                   ).scalar_one()
        agent.paused_until = now()
        db.session.commit()
    assert maintain(app)["agent_pauses_ended"] == 1
    assert [j["job_id"] for j in sim.poll_jobs()] == [job_id]
