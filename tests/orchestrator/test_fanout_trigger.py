"""POST /trigger-script with ``agents``/``tags`` (a fan-out) or ``pool``; GET /jobs?fanout_id."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Job
from orchestrator.services import maintenance
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def tagged(ws: Workspace, name: str, tags: list[str], **kwargs: Any) -> SimAgent:
    sim = ws.agent(name, register=False, **kwargs)
    assert sim.register(tags=tags).status_code == 200
    return sim


def trigger(ws: Workspace, **body: Any) -> Any:
    body.setdefault("run_script", "hello.sh")
    return ws.client.post("/trigger-script", json=body, headers=ws.headers)


def test_trigger_with_tags_answers_the_fanout(ws: Workspace) -> None:
    tagged(ws, "prod-1", ["production"])
    tagged(ws, "prod-2", ["production"])
    tagged(ws, "stg-1", ["staging"])
    response = trigger(ws, tags=["production"], params={"version": "v2.4.1"})
    assert response.status_code == 202, response.json
    assert set(response.json) == {"fanout_id", "jobs", "skipped"}
    assert sorted(j["agent"] for j in response.json["jobs"]) == ["prod-1", "prod-2"]
    listed = ws.client.get(f"/jobs?fanout_id={response.json['fanout_id']}",
                           headers=ws.headers).json["jobs"]
    assert sorted(j["job_id"] for j in listed) == sorted(
        j["job_id"] for j in response.json["jobs"])
    assert {j["fanout_id"] for j in listed} == {response.json["fanout_id"]}
    assert {tuple(j["params"].items()) for j in listed} == {(("version", "v2.4.1"),)}


def test_trigger_with_an_agent_list_and_the_seed_body_shape(ws: Workspace) -> None:
    tagged(ws, "a", [])
    tagged(ws, "b", [])
    response = ws.client.post("/trigger-script", headers=ws.headers,
                              data='{"agents":["a","b"],"run_script":"hello.sh",'
                                   '"async_exec":true}')
    assert response.status_code == 202, response.json
    assert [j["agent"] for j in response.json["jobs"]] == ["a", "b"]
    single = trigger(ws, agent="a")
    assert single.status_code == 202 and set(single.json) == {"job_id", "status"}


@pytest.mark.parametrize("body", [
    {"agent": "a", "tags": ["x"]},
    {"agent": "a", "pool": "x"},
    {"pool": "x", "agents": ["a"]},
    {},
    {"agent": "a", "max_concurrency": 2},
    {"tags": ["x"], "run_flow": "health", "params": {"a": "b"}},
])
def test_exactly_one_kind_of_target(ws: Workspace, body: dict[str, Any]) -> None:
    tagged(ws, "a", ["x"])
    response = trigger(ws, **body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"


def test_fanout_trigger_with_nothing_matched_is_422(ws: Workspace) -> None:
    tagged(ws, "a", ["x"])
    response = trigger(ws, tags=["nothing-has-this"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "no_targets"


def test_pool_job_is_taken_by_one_agent_and_names_it(ws: Workspace) -> None:
    one = tagged(ws, "worker-1", ["pool-a"])
    two = tagged(ws, "worker-2", ["pool-a"])
    outsider = tagged(ws, "other", ["pool-b"])
    response = trigger(ws, pool="pool-a")
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    before = ws.job(job_id)
    assert before["agent"] is None and before["pool"] == "pool-a"
    assert outsider.poll_jobs() == []
    taken = one.poll_jobs() + two.poll_jobs()
    assert [j["job_id"] for j in taken] == [job_id], "exactly one agent gets it"
    assert one.start(job_id).status_code == 200
    assert one.result(job_id, stdout="done\n").status_code == 200
    after = ws.job(job_id)
    assert after["agent"] == "worker-1" and after["status"] == "success"
    assert two.poll_jobs() == [] and two.start(job_id).status_code == 409
    listed = ws.client.get("/jobs?pool=pool-a", headers=ws.headers).json["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]


def test_pool_job_with_two_agents_polling_at_the_same_moment(app: Flask, ws: Workspace) -> None:
    agents = [tagged(ws, f"worker-{i}", ["pool-a"]) for i in range(2)]
    app.config["POLL_WAIT"] = 5
    got: dict[str, list[dict[str, Any]]] = {}
    barrier = threading.Barrier(3)

    def long_poll(sim: SimAgent) -> None:
        barrier.wait()
        got[sim.name] = sim.poll_jobs(wait=2)

    threads = [threading.Thread(target=long_poll, args=(sim,)) for sim in agents]
    for thread in threads:
        thread.start()
    barrier.wait()
    job_id = trigger(ws, pool="pool-a").json["job_id"]
    for thread in threads:
        thread.join(10)
    winners = [name for name, jobs in got.items() if jobs]
    assert len(winners) == 1, got
    assert got[winners[0]][0]["job_id"] == job_id
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.dispatch_count == 1 and job.agent_name == winners[0]


def test_unacknowledged_pool_job_goes_back_to_the_pool(app: Flask, ws: Workspace) -> None:
    first = tagged(ws, "worker-1", ["pool-a"])
    second = tagged(ws, "worker-2", ["pool-a"])
    job_id = trigger(ws, pool="pool-a").json["job_id"]
    assert [j["job_id"] for j in first.poll_jobs()] == [job_id]
    with app.app_context():
        db.session.execute(db.update(Job).where(Job.id == job_id).values(
            lease_expires_at=db.func.coalesce(Job.dispatched_at, Job.created_at)))
        db.session.commit()
        maintenance.run_maintenance()
    assert ws.job(job_id)["agent"] is None, "free for the pool again"
    assert [j["job_id"] for j in second.poll_jobs()] == [job_id]
    assert first.start(job_id).status_code == 409, "the first lease is void"


def test_pool_needs_an_agent_that_lists_the_script(ws: Workspace) -> None:
    tagged(ws, "worker-1", ["pool-a"], scripts=("backup.sh",))
    response = trigger(ws, pool="pool-a")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "no_pool_agent"
    assert trigger(ws, pool="nobody").json["error"]["code"] == "no_pool_agent"


def test_a_flow_fans_out_to_the_agents_whose_manifest_lists_it(ws: Workspace) -> None:
    with_flow = {"scripts": [], "flows": [{"name": "health", "description": "checks"}]}
    first, second = (ws.agent(name, register=False) for name in ("edge-1", "edge-2"))
    for sim in (first, second):
        assert sim.register(tags=["edge"], manifest=with_flow).status_code == 200
    tagged(ws, "edge-3", ["edge"])  # lists scripts only
    response = ws.client.post("/trigger-script", headers=ws.headers, json={
        "tags": ["edge"], "run_flow": "health", "variables": {"region": "eu"}})
    assert response.status_code == 202, response.json
    assert sorted(j["agent"] for j in response.json["jobs"]) == ["edge-1", "edge-2"]
    assert response.json["skipped"] == [{"agent": "edge-3", "reason": "flow_not_in_manifest"}]
    for sim in (first, second):
        (assignment,) = sim.poll_jobs()
        assert (assignment["kind"], assignment["flow"], assignment["variables"]) == (
            "flow", "health", {"region": "eu"})
    report = ws.client.get(f"/fanouts/{response.json['fanout_id']}", headers=ws.headers).json
    assert (report["kind"], report["script"]) == ("flow", "health")
