"""POST /trigger-script and the long-poll: validation, queueing, leasing, waking, waiting."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Job
from orchestrator.services import agent_queues, dispatch
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def test_async_trigger_queues_a_job_the_agent_polls(ws: Workspace) -> None:
    sim = ws.agent()
    response = ws.trigger(params={"target": "s3://bucket", "count": 3, "dry": True})
    assert response.status_code == 202
    assert set(response.json) == {"job_id", "status"}
    assert response.json["status"] == "pending"
    assert response.json["job_id"].startswith("job_")
    jobs = sim.poll_jobs()
    assert len(jobs) == 1
    job = jobs[0]
    assert job["job_id"] == response.json["job_id"]
    assert job["kind"] == "script" and job["script"] == "hello.sh" and job["timeout"] == 300
    assert job["params"] == {"target": "s3://bucket", "count": "3", "dry": "true"}
    assert job["lease_expires_at"].endswith("Z")
    assert sim.poll_jobs() == [], "a leased job is handed out once"


def test_trigger_errors_name_agent_and_script(ws: Workspace) -> None:
    ws.agent()
    unknown = ws.trigger(agent="nope")
    assert unknown.status_code == 404
    assert unknown.json["error"]["code"] == "agent_not_found"
    unlisted = ws.trigger(script="rm-rf.sh")
    assert unlisted.status_code == 403
    assert unlisted.json["error"]["code"] == "script_not_in_manifest"
    assert unlisted.json["error"]["details"] == {"script": "rm-rf.sh", "agent": "agent-1"}
    assert "rm-rf.sh" in unlisted.json["error"]["message"]


@pytest.mark.parametrize("params", [
    {"nested": {"a": 1}}, {"list": [1, 2]}, {"none": None}, {"bad-name": "x"}, ["a"], "str",
])
def test_params_must_be_an_object_of_scalars(ws: Workspace, params: Any) -> None:
    ws.agent()
    response = ws.trigger(params=params)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "params" in response.json["error"]["details"]["fields"]


def test_trigger_needs_operator_scope(ws: Workspace) -> None:
    sim = ws.agent()
    body = {"agent": "agent-1", "run_script": "hello.sh"}
    as_agent = ws.client.post("/trigger-script", json=body,
                              headers={"Authorization": f"Bearer {sim.key}"})
    assert as_agent.status_code == 403
    read_key = ws.new_key(ws.user["user_id"], scope="read")
    as_reader = ws.client.post("/trigger-script", json=body,
                               headers={"Authorization": f"Bearer {read_key}"})
    assert as_reader.status_code == 403
    assert ws.client.post("/trigger-script", json=body).status_code == 401
    with_jwt = ws.client.post("/trigger-script", json=body, headers=ws.user["headers"])
    assert with_jwt.status_code == 202


def test_seed_curl_without_json_content_type_works(ws: Workspace) -> None:
    ws.agent()
    response = ws.client.post(
        "/trigger-script", headers=ws.headers,
        data='{"agent":"agent-1","run_script":"hello.sh","params":{"version":"v2"},'
             '"async_exec":true}')
    assert response.status_code == 202


def test_idempotency_key_returns_the_first_job(ws: Workspace) -> None:
    ws.agent()
    first = ws.trigger(idempotency_key="deploy-42")
    assert first.status_code == 202
    again = ws.trigger(idempotency_key="deploy-42")
    assert again.status_code == 200
    assert again.json["job_id"] == first.json["job_id"]
    other = ws.trigger(idempotency_key="deploy-43")
    assert other.json["job_id"] != first.json["job_id"]
    listed = ws.client.get("/jobs", headers=ws.headers).json["jobs"]
    assert len(listed) == 2


def test_long_poll_answers_as_soon_as_a_job_is_queued(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    app.config["POLL_WAIT"] = 10
    got: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        got["jobs"] = sim.poll_jobs(wait=10)
        got["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)
    job_id = ws.trigger_id()
    poller.join(15)
    assert [j["job_id"] for j in got["jobs"]] == [job_id]
    assert got["seconds"] < 3, "the poll must wake on the enqueue, not at the end of its wait"


def test_poll_wait_is_capped_by_config_and_holds_no_db_connection(
        app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    app.config["POLL_WAIT"] = 1.5
    got: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        got["jobs"] = sim.poll_jobs(wait=30)
        got["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.7)
    with app.app_context():
        assert db.engine.pool.checkedout() == 0, "a blocked poll must hold no DB connection"
    poller.join(10)
    assert got["jobs"] == []
    assert (1 - dispatch.POLL_JITTER) * 1.5 - 0.1 < got["seconds"] < 4


def test_idle_poll_waits_are_jittered_below_the_cap() -> None:
    waits = [dispatch.poll_wait(30, 25.0) for _ in range(200)]
    assert all((1 - dispatch.POLL_JITTER) * 25 <= w <= 25 for w in waits)
    assert max(waits) - min(waits) > 1, "re-arming polls must be spread out"
    assert dispatch.poll_wait(None, 10.0) <= 10 and dispatch.poll_wait(-5, 10.0) == 0


def test_poll_returns_up_to_max_jobs(ws: Workspace) -> None:
    sim = ws.agent()
    ids = [ws.trigger_id() for _ in range(3)]
    first = sim.poll_jobs(max_jobs=2)
    second = sim.poll_jobs(max_jobs=2)
    assert [j["job_id"] for j in first + second] == ids


def test_agents_only_receive_their_own_jobs(ws: Workspace) -> None:
    one, two = ws.agent("one"), ws.agent("two")
    job_id = ws.trigger_id(agent="two")
    assert one.poll_jobs() == []
    assert [j["job_id"] for j in two.poll_jobs()] == [job_id]


def test_a_duplicate_queue_entry_is_never_leased_twice(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    with app.app_context():
        agent_queues.enqueue(db.session.get(Job, job_id))  # e.g. a reconciler racing the enqueue
    assert [j["job_id"] for j in sim.poll_jobs(max_jobs=5)] == [job_id]
    assert sim.poll_jobs(max_jobs=5) == []
    with app.app_context():
        assert db.session.get(Job, job_id).dispatch_count == 1


def test_popped_ids_leave_no_trace_in_redis(app: Flask, ws: Workspace, redis_url: str) -> None:
    sim = ws.agent()
    ws.trigger_id()
    sim.poll_jobs()
    connection = redis.Redis.from_url(redis_url)
    leftovers = [k for k in connection.keys("rq:*") if not k.endswith(b"rq:queues")]
    assert all(connection.llen(k) == 0 for k in leftovers if connection.type(k) == b"list")
    assert not [k for k in leftovers if k.startswith(b"rq:job:")]


def test_cancelled_pending_job_is_never_handed_out(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    response = ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers)
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"
    assert sim.poll_jobs() == []


def test_jobs_for_an_offline_agent_wait_pending(app: Flask, ws: Workspace) -> None:
    sim = ws.agent(register=False)
    manual = ws.client.post("/register-agent", headers=ws.headers,
                            json={"agent_name": "agent-1", "tags": ["production"]})
    assert manual.status_code == 200
    listing = ws.client.get("/agents", headers=ws.headers).json
    assert listing["agent-1"]["status"] == "offline"
    assert ws.trigger().status_code == 403, "no manifest reported yet: nothing is whitelisted"
    assert sim.register().status_code == 200
    job_id = ws.trigger_id()
    assert ws.job(job_id)["status"] == "pending"
    assert [j["job_id"] for j in sim.poll_jobs()] == [job_id]


def _finish_soon(sim: Any, delay: float, **result: Any) -> threading.Thread:
    def work() -> None:
        time.sleep(delay)
        jobs = sim.poll_jobs(wait=5)
        sim.start(jobs[0]["job_id"])
        sim.result(jobs[0]["job_id"], **result)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_sync_trigger_waits_for_the_result(ws: Workspace) -> None:
    sim = ws.agent()
    worker = _finish_soon(sim, 0.3, stdout="done\n")
    response = ws.trigger(async_exec=False, timeout=20)
    worker.join(10)
    assert response.status_code == 200
    assert response.json["status"] == "success"
    assert response.json["stdout"] == "done\n"
    assert response.json["completed_at"].endswith("Z")


def test_sync_trigger_answers_202_when_the_wait_runs_out(ws: Workspace) -> None:
    ws.agent()
    started = time.monotonic()
    response = ws.trigger(async_exec=False, timeout=1)
    assert response.status_code == 202
    assert response.json["status"] == "pending"
    assert "stdout" in response.json
    assert time.monotonic() - started < 5


def test_queue_ttl_sets_expiry(ws: Workspace) -> None:
    ws.agent()
    job = ws.job(ws.trigger_id(queue_ttl=60))
    assert job["expires_at"] is not None and job["expires_at"].endswith("Z")
    too_long = ws.trigger(timeout=86401)
    assert too_long.status_code == 422
