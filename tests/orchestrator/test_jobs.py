"""Jobs: reading, output streaming, results, cancel, listing with cursors, tenancy, metrics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Event
from tests.orchestrator.agent_sim import Workspace, workspace

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JOB_FIELDS = {"job_id", "agent", "script", "params", "status", "exit_code", "stdout", "stderr",
              "truncated", "duration_ms", "created_at", "started_at", "completed_at", "error",
              "timeout", "webhook_url"}


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def test_job_lifecycle_as_the_product_docs_show_it(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id(script="backup.sh", params={"target": "s3://my-bucket"},
                           webhook_url="https://hooks.example.com/done")
    pending = ws.job(job_id)
    assert set(pending) >= JOB_FIELDS
    assert pending["status"] == "pending" and pending["agent"] == "agent-1"
    assert pending["started_at"] is None and ISO_Z.match(pending["created_at"])
    sim.take(job_id)
    running = ws.job(job_id)
    assert running["status"] == "running" and ISO_Z.match(running["started_at"])
    response = sim.result(job_id, stdout="Backup complete.\n", stderr="", duration_ms=4231)
    assert response.status_code == 200 and response.json == {"status": "ok"}
    done = ws.job(job_id)
    assert done["status"] == "success" and done["exit_code"] == 0
    assert done["stdout"] == "Backup complete.\n" and done["duration_ms"] == 4231
    assert ISO_Z.match(done["completed_at"])
    assert done["webhook_url"] == "https://hooks.example.com/done"
    with app.app_context():
        events = db.session.execute(db.select(Event.type).where(Event.subject == job_id))
        assert list(events.scalars()) == ["job.succeeded"]


def test_partial_output_is_visible_and_uploads_are_idempotent(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    assert sim.output(job_id, stdout=(0, "line 1\n")).json == {"cancel": False}
    sim.output(job_id, stdout=(0, "line 1\n"))  # a repeated chunk (the answer was lost)
    sim.output(job_id, stdout=(0, "line 1\nline 2\n"), stderr=(0, "warn\n"))  # overlapping
    sim.output(job_id, stdout=(100, "gap"))  # ahead of what we have: dropped
    job = ws.job(job_id)
    assert job["status"] == "running"
    assert job["stdout"] == "line 1\nline 2\n"
    assert job["stderr"] == "warn\n"


def test_first_result_wins_and_repeats_answer_ok(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    assert sim.result(job_id, "failed", exit_code=3, stderr="boom\n").status_code == 200
    assert sim.result(job_id, "success").status_code == 200
    job = ws.job(job_id)
    assert job["status"] == "failed" and job["exit_code"] == 3 and job["stderr"] == "boom\n"
    with app.app_context():
        count = db.session.execute(db.select(db.func.count()).select_from(Event)
                                   .where(Event.subject == job_id)).scalar()
        assert count == 1, "one terminal event however often the result is sent"


def test_results_and_output_from_another_agent_are_refused(ws: Workspace) -> None:
    owner, other = ws.agent("owner"), ws.agent("other")
    job_id = ws.trigger_id(agent="owner")
    assert other.start(job_id).status_code == 409, "not leased yet, and not to other"
    owner.take(job_id)
    assert other.result(job_id).json["error"]["code"] == "job_not_leased"
    assert other.output(job_id, stdout=(0, "x")).status_code == 409
    assert ws.job(job_id)["status"] == "running"


def test_agent_refusal_before_start_is_recorded(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.poll_jobs()
    response = sim.result(job_id, "failed", exit_code=None, duration_ms=0,
                          error="script_not_in_manifest: hello.sh")
    assert response.status_code == 200
    job = ws.job(job_id)
    assert job["status"] == "failed" and job["error"] == "script_not_in_manifest: hello.sh"


def test_cancel_a_running_job_reaches_the_agent(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id(script="sleep.sh")
    sim.take(job_id)
    assert sim.heartbeat([job_id]).json["commands"] == []
    response = ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers)
    assert response.status_code == 202
    assert response.json["status"] == "running" and response.json["cancel_requested_at"]
    assert sim.heartbeat([job_id]).json["commands"] == [{"type": "cancel", "job_id": job_id}]
    assert sim.output(job_id, stdout=(0, "zzz")).json == {"cancel": True}
    sim.result(job_id, "cancelled", exit_code=-15, error="cancelled: requested by the hub")
    assert ws.job(job_id)["status"] == "cancelled"
    assert sim.heartbeat([]).json["commands"] == []
    again = ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "job_finished"


def test_a_job_cancelled_after_its_poll_must_not_start(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    assert sim.poll_jobs()[0]["job_id"] == job_id
    assert ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers).status_code == 200
    start = sim.start(job_id)
    assert start.status_code == 409 and start.json["error"]["code"] == "job_not_runnable"
    assert sim.heartbeat([job_id]).json["commands"] == [{"type": "cancel", "job_id": job_id}]


def test_start_is_idempotent_for_its_agent(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    assert sim.start(job_id).json == {"status": "running"}


def test_list_filters_and_cursor_pages(ws: Workspace) -> None:
    one, two = ws.agent("one"), ws.agent("two")
    ids = [ws.trigger_id(agent="one" if i % 2 else "two") for i in range(7)]
    two.take(ids[0])
    two.result(ids[0], "failed")
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = ws.client.get("/jobs", query_string=query, headers=ws.headers).json
        assert len(page["jobs"]) <= 3
        assert all("stdout" not in job for job in page["jobs"])
        seen += [job["job_id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)), "newest first, each job exactly once"
    by_agent = ws.client.get("/jobs?agent=one", headers=ws.headers).json["jobs"]
    assert {job["agent"] for job in by_agent} == {"one"} and len(by_agent) == 3
    failed = ws.client.get("/jobs?status=failed", headers=ws.headers).json["jobs"]
    assert [job["job_id"] for job in failed] == [ids[0]]
    created = ws.job(ids[3])["created_at"]
    since = ws.client.get("/jobs", query_string={"since": created}, headers=ws.headers).json
    assert {job["job_id"] for job in since["jobs"]} <= set(ids[3:])
    assert ids[6] in {job["job_id"] for job in since["jobs"]}
    until = ws.client.get("/jobs", query_string={"until": created}, headers=ws.headers).json
    assert set(ids[:3]) <= {job["job_id"] for job in until["jobs"]}
    assert one.poll_jobs(max_jobs=10)


@pytest.mark.parametrize("query", ["limit=501", "limit=0", "status=weird", "cursor=%%%",
                                   "cursor=bm9wZQ", "since=yesterday"])
def test_bad_list_queries_are_422(ws: Workspace, query: str) -> None:
    response = ws.client.get(f"/jobs?{query}", headers=ws.headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_other_tenants_jobs_and_agents_are_404(ws: Workspace, client: FlaskClient,
                                              make_user: Any, make_api_key: Any) -> None:
    ws.agent()
    job_id = ws.trigger_id()
    other = workspace(client, make_user, make_api_key)
    intruder = other.agent()  # same agent name, other tenant
    assert client.get(f"/jobs/{job_id}", headers=other.headers).status_code == 404
    assert client.post(f"/jobs/{job_id}/cancel", headers=other.headers).status_code == 404
    assert client.get("/jobs", headers=other.headers).json["jobs"] == []
    assert intruder.poll_jobs() == [], "same name, other tenant: not its queue"
    assert intruder.start(job_id).status_code == 404
    assert intruder.result(job_id).status_code == 404
    assert client.get("/agents/agent-1", headers=other.headers).json["agent_id"] != \
        client.get("/agents/agent-1", headers=ws.headers).json["agent_id"]
    assert client.delete("/agents/nobody", headers=other.headers).status_code == 404
    metrics = client.get("/metrics/json", headers=other.headers).json
    assert metrics["jobs"]["total"] == 0 and metrics["agents"]["total"] == 1


def test_metrics_json(ws: Workspace) -> None:
    sim = ws.agent()
    ws.agent("idle")
    done = ws.trigger_id()
    sim.take(done)
    sim.result(done, duration_ms=1500)
    ws.trigger_id()
    metrics = ws.client.get("/metrics/json", headers=ws.headers).json
    assert metrics["agents"] == {"total": 2, "online": 2, "offline": 0}
    assert metrics["jobs"]["by_status"]["success"] == 1
    assert metrics["jobs"]["by_status"]["pending"] == 1 and metrics["jobs"]["total"] == 2
    assert metrics["queues"] == {"agent-1": 1, "idle": 0}
    assert metrics["run_duration_ms"] == {"count": 1, "p50": 1500, "p95": 1500, "p99": 1500}
    assert metrics["dispatch_latency_ms"]["count"] == 1
    assert metrics["dispatch_latency_ms"]["p50"] >= 0
    assert ws.client.get("/metrics/json").status_code == 401
