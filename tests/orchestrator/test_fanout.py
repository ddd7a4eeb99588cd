"""POST /fanouts: selection, one job per agent, rate control, canary stages, cancel, events.

Simulated agents speak the real protocol through the test client
(``agent_sim``); Redis and the database are real.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Event, Job
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def fleet(ws: Workspace, tags: dict[str, list[str]], **kwargs: Any) -> dict[str, SimAgent]:
    """Register one simulated agent per name, with the given tags."""
    agents = {}
    for name, agent_tags in tags.items():
        sim = ws.agent(name, register=False, **kwargs)
        assert sim.register(tags=agent_tags).status_code == 200
        agents[name] = sim
    return agents


def fan_out(ws: Workspace, expect: int = 202, **body: Any) -> dict[str, Any]:
    body.setdefault("run_script", "hello.sh")
    response = ws.client.post("/fanouts", json=body, headers=ws.headers)
    assert response.status_code == expect, response.json
    return response.json


def report(ws: Workspace, fanout_id: str) -> dict[str, Any]:
    response = ws.client.get(f"/fanouts/{fanout_id}", headers=ws.headers)
    assert response.status_code == 200, response.json
    return response.json


def run_one(sim: SimAgent, status: str = "success", **result: Any) -> str | None:
    """Poll one job, start it and report its result; the job id, or None when none came."""
    jobs = sim.poll_jobs()
    if not jobs:
        return None
    job_id = jobs[0]["job_id"]
    assert sim.start(job_id).status_code == 200
    assert sim.result(job_id, status, **result).status_code == 200
    return job_id


def test_fan_out_by_names_creates_one_job_per_agent(ws: Workspace) -> None:
    agents = fleet(ws, {"web-1": ["prod"], "web-2": ["prod"], "web-3": ["prod"]})
    created = fan_out(ws, agents=["web-1", "web-3", "ghost"], params={"version": "v2"})
    assert created["fanout_id"].startswith("fan_")
    assert [j["agent"] for j in created["jobs"]] == ["web-1", "web-3"]
    assert all(j["job_id"].startswith("job_") for j in created["jobs"])
    assert created["skipped"] == [{"agent": "ghost", "reason": "not_found"}]
    for job in created["jobs"]:
        [assignment] = agents[job["agent"]].poll_jobs()
        assert assignment["job_id"] == job["job_id"]
        assert assignment["params"] == {"version": "v2"}
    assert agents["web-2"].poll_jobs() == []
    one = ws.job(created["jobs"][0]["job_id"])
    assert one["status"] == "pending" and one["agent"] == "web-1"


def test_fan_out_by_tags_needs_every_tag(ws: Workspace) -> None:
    fleet(ws, {"eu-1": ["prod", "eu"], "eu-2": ["prod", "eu", "db"], "us-1": ["prod", "us"],
               "eu-stg": ["staging", "eu"]})
    created = fan_out(ws, tags=["prod", "eu"])
    assert sorted(j["agent"] for j in created["jobs"]) == ["eu-1", "eu-2"]
    assert created["skipped"] == []
    both = fan_out(ws, agents=["us-1"], tags=["eu", "staging"])
    assert [j["agent"] for j in both["jobs"]] == ["us-1", "eu-stg"], "names and tags add up"


def test_offline_and_unlisted_agents_are_skipped_and_reported(ws: Workspace) -> None:
    fleet(ws, {"up-1": ["prod"], "up-2": ["prod"]})
    fleet(ws, {"down-1": ["prod"]}, scripts=("hello.sh",))
    late = ws.agents[-1]
    assert late.register(tags=["prod"], heartbeat_interval=0.1).status_code == 200
    fleet(ws, {"old-1": ["prod"]}, scripts=("backup.sh",))
    time.sleep(0.5)  # down-1 misses its 0.1 s heartbeats: offline
    listing = ws.client.get("/agents", headers=ws.headers).json
    assert listing["down-1"]["status"] == "offline"
    created = fan_out(ws, tags=["prod"])
    assert sorted(j["agent"] for j in created["jobs"]) == ["up-1", "up-2"]
    assert sorted(created["skipped"], key=lambda s: s["agent"]) == [
        {"agent": "down-1", "reason": "offline"},
        {"agent": "old-1", "reason": "script_not_in_manifest"}]
    everyone = fan_out(ws, tags=["prod"], only_online=False)
    assert sorted(j["agent"] for j in everyone["jobs"]) == ["down-1", "up-1", "up-2"]
    assert report(ws, created["fanout_id"])["skipped"] == created["skipped"]


def test_nothing_matched_is_a_422_that_explains(ws: Workspace) -> None:
    fleet(ws, {"web-1": ["prod"]}, scripts=("backup.sh",))
    error = fan_out(ws, 422, tags=["prod"])["error"]
    assert error["code"] == "no_targets"
    assert "matched no" in error["message"]
    assert error["details"]["skipped"] == [{"agent": "web-1",
                                            "reason": "script_not_in_manifest"}]
    assert fan_out(ws, 422, tags=["nowhere"])["error"]["code"] == "no_targets"
    assert ws.client.get("/jobs", headers=ws.headers).json["jobs"] == []


@pytest.mark.parametrize("body, field", [
    ({}, "agents"),
    ({"agents": []}, "agents"),
    ({"agents": ["a"], "stages": [{"agents": ["b"]}]}, "stages"),
    ({"stages": [{"max_concurrency": 1}]}, "stages"),
    ({"agents": ["a"], "max_concurrency": "lots"}, "max_concurrency"),
    ({"agents": ["a"], "max_concurrency": 0}, "max_concurrency"),
    ({"agents": ["a"], "max_errors": "150%"}, "max_errors"),
])
def test_invalid_fan_out_requests_name_the_field(ws: Workspace, body: dict[str, Any],
                                                 field: str) -> None:
    error = fan_out(ws, 422, **body)["error"]
    assert error["code"] == "validation_error"
    assert field in str(error["details"]["fields"]), error


def test_fan_out_needs_operator_scope(ws: Workspace) -> None:
    fleet(ws, {"web-1": []})
    reader = ws.new_key(ws.user["user_id"], scope="read")
    body = {"agents": ["web-1"], "run_script": "hello.sh"}
    response = ws.client.post("/fanouts", json=body,
                              headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 403
    assert ws.client.post("/fanouts", json=body).status_code == 401
    assert ws.client.get("/fanouts", headers={"Authorization": f"Bearer {reader}"}).status_code \
        == 200


def test_jobs_are_ordinary_jobs_of_the_tenant(ws: Workspace, make_user: Any,
                                               make_api_key: Any) -> None:
    agents = fleet(ws, {"web-1": [], "web-2": []})
    created = fan_out(ws, agents=["web-1", "web-2"])
    job_id = created["jobs"][0]["job_id"]
    cancel = ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers)
    assert cancel.status_code == 200 and cancel.json["status"] == "cancelled"
    assert agents["web-1"].poll_jobs() == []
    assert run_one(agents["web-2"]) == created["jobs"][1]["job_id"]
    other = workspace(ws.client, make_user, make_api_key)
    hidden = other.client.get(f"/fanouts/{created['fanout_id']}", headers=other.headers)
    assert hidden.status_code == 404
    assert hidden.json["error"]["code"] == "fanout_not_found"


def intervals(ws: Workspace, fanout_id: str) -> list[tuple[datetime, datetime]]:
    rows = report(ws, fanout_id)["agents"]
    return [(datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")),
             datetime.fromisoformat(r["completed_at"].replace("Z", "+00:00")))
            for r in rows if r["started_at"]]


def max_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one instant (an end at t closes before a start at t)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                   key=lambda edge: (edge[0], edge[1]))
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_max_concurrency_releases_held_jobs_in_order(ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(5)]
    agents = fleet(ws, {name: ["prod"] for name in names})
    created = fan_out(ws, agents=names, max_concurrency=2)
    state = report(ws, created["fanout_id"])
    assert state["held"] == 3 and state["counts"]["pending"] == 5
    assert [r["held"] for r in state["agents"]] == [False, False, True, True, True]
    assert agents["node-2"].poll_jobs() == [], "held jobs are not queued"
    finished = []
    for _ in range(3):
        ready = [name for name in names if name not in finished]
        for name in ready:
            job_id = run_one(agents[name])
            if job_id:
                finished.append(name)
                break
    assert finished == ["node-0", "node-1", "node-2"], "released in order as others finish"
    for name in names[3:]:
        run_one(agents[name])
    final = report(ws, created["fanout_id"])
    assert final["done"] and final["status"] == "success"
    assert final["counts"]["success"] == 5
    assert max_overlap(intervals(ws, created["fanout_id"])) <= 2


def test_max_concurrency_never_exceeded_while_agents_race(ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(6)]
    agents = fleet(ws, {name: [] for name in names})
    created = fan_out(ws, agents=names, max_concurrency="34%")  # ceil(2.04) = 3
    running: dict[str, str] = {}
    peak = 0
    for _ in range(40):
        for name in names:
            if name in running:
                continue
            jobs = agents[name].poll_jobs()
            if jobs:
                assert agents[name].start(jobs[0]["job_id"]).status_code == 200
                running[name] = jobs[0]["job_id"]
        peak = max(peak, len(running))
        if running:
            name = sorted(running)[0]
            agents[name].result(running.pop(name))
        if report(ws, created["fanout_id"])["done"]:
            break
    assert peak == 3
    assert max_overlap(intervals(ws, created["fanout_id"])) <= 3
    assert report(ws, created["fanout_id"])["counts"]["success"] == 6


def test_max_errors_cancels_jobs_not_started(app: Flask, ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(6)]
    agents = fleet(ws, {name: [] for name in names})
    created = fan_out(ws, agents=names, max_concurrency=3, max_errors=1)
    jobs = {name: agents[name].poll_jobs() for name in names[:3]}
    for name in names[:3]:
        assert agents[name].start(jobs[name][0]["job_id"]).status_code == 200
    agents["node-0"].result(jobs["node-0"][0]["job_id"], "failed")
    assert report(ws, created["fanout_id"])["stop_reason"] is None, "1 error is tolerated"
    assert run_one(agents["node-3"], "failed") is not None, "node-0's slot went to node-3"
    state = report(ws, created["fanout_id"])
    assert state["stop_reason"] == "max_errors" and not state["done"]
    rows = {r["agent"]: r for r in state["agents"]}
    assert [rows[n]["status"] for n in names] == [
        "failed", "running", "running", "failed", "cancelled", "cancelled"]
    assert rows["node-4"]["error"] == rows["node-5"]["error"] == "max_errors"
    assert agents["node-4"].poll_jobs() == [] and agents["node-5"].poll_jobs() == []
    agents["node-1"].result(jobs["node-1"][0]["job_id"])
    agents["node-2"].result(jobs["node-2"][0]["job_id"])
    final = report(ws, created["fanout_id"])
    assert final["done"] and final["status"] == "failed"
    assert final["counts"] == {"pending": 0, "running": 0, "success": 2, "failed": 2,
                               "timeout": 0, "cancelled": 2, "expired": 0}
    with app.app_context():
        events = db.session.execute(db.select(Event).where(
            Event.type == "fanout.completed")).scalars().all()
        assert [e.subject for e in events] == [created["fanout_id"]]
        assert events[0].payload["stop_reason"] == "max_errors"


def test_max_errors_percentage_rounds_down(ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(4)]
    agents = fleet(ws, {name: [] for name in names})
    created = fan_out(ws, agents=names, max_concurrency=1, max_errors="30%")  # 1.2 -> 1
    run_one(agents["node-0"], "failed")
    assert report(ws, created["fanout_id"])["stop_reason"] is None
    run_one(agents["node-1"], "failed")
    assert report(ws, created["fanout_id"])["stop_reason"] == "max_errors"
    assert report(ws, created["fanout_id"])["done"]


def canary_fleet(ws: Workspace) -> dict[str, SimAgent]:
    return fleet(ws, {"staging-1": ["staging"], "prod-us-east": ["production"],
                      "prod-eu-west": ["production"], "prod-ap-south": ["production"]})


CANARY = [{"agents": ["staging-1"]}, {"tags": ["production"], "max_concurrency": 2}]


def test_canary_stage_success_starts_the_next_stage(ws: Workspace) -> None:
    agents = canary_fleet(ws)
    created = fan_out(ws, stages=CANARY, run_script="backup.sh")
    assert len(created["jobs"]) == 4
    assert all(agents[n].poll_jobs() == [] for n in agents if n != "staging-1")
    state = report(ws, created["fanout_id"])
    assert [s["state"] for s in state["stages"]] == ["running", "waiting"]
    assert state["stages"][1]["agents"] == ["prod-ap-south", "prod-eu-west", "prod-us-east"]
    run_one(agents["staging-1"])
    state = report(ws, created["fanout_id"])
    assert state["current_stage"] == 1
    assert [s["state"] for s in state["stages"]] == ["succeeded", "running"]
    prod = ("prod-ap-south", "prod-eu-west", "prod-us-east")
    polled = {name: agents[name].poll_jobs() for name in prod}
    assert [n for n in prod if polled[n]] == ["prod-ap-south", "prod-eu-west"], \
        "the stage's own max_concurrency"
    for name in ("prod-ap-south", "prod-eu-west"):
        job_id = polled[name][0]["job_id"]
        assert agents[name].start(job_id).status_code == 200
        assert agents[name].result(job_id).status_code == 200
    assert run_one(agents["prod-us-east"])
    final = report(ws, created["fanout_id"])
    assert final["done"] and final["status"] == "success"


def test_failing_canary_cancels_the_next_stage(app: Flask, ws: Workspace) -> None:
    agents = canary_fleet(ws)
    created = fan_out(ws, stages=CANARY)
    run_one(agents["staging-1"], "failed", stdout="deploy broke\n")
    final = report(ws, created["fanout_id"])
    assert final["done"] and final["status"] == "failed"
    assert final["stop_reason"] == "stage_failed"
    assert [s["state"] for s in final["stages"]] == ["failed", "cancelled"]
    rows = [r for r in final["agents"] if r["stage"] == 1]
    assert {(r["status"], r["error"]) for r in rows} == {("cancelled", "stage_failed")}
    assert all(agents[n].poll_jobs() == [] for n in agents)
    with app.app_context():
        cancelled = db.session.execute(db.select(Event).where(
            Event.type == "job.cancelled")).scalars().all()
        assert len(cancelled) == 3, "every cancelled job still gets its event"


def test_a_stage_without_agents_is_refused(ws: Workspace) -> None:
    fleet(ws, {"prod-1": ["production"]})
    error = fan_out(ws, 422, stages=[{"agents": ["staging-1"]}, {"tags": ["production"]}])
    assert error["error"]["details"]["stage"] == 0, "never roll out without the canary"


def test_diff_groups_identical_outputs_largest_first(ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(5)]
    agents = fleet(ws, {name: [] for name in names})
    created = fan_out(ws, agents=names)
    outputs = {"node-0": ("success", "v2\n"), "node-1": ("failed", "disk full\n"),
               "node-2": ("success", "v2\n"), "node-3": ("success", "v1\n"),
               "node-4": ("success", "v2\n")}
    for name, (status, stdout) in outputs.items():
        run_one(agents[name], status, stdout=stdout)
    diff = report(ws, created["fanout_id"])["diff"]
    assert diff[0] == {"count": 3, "status": "success", "exit_code": 0, "stdout": "v2\n",
                       "agents": ["node-0", "node-2", "node-4"]}
    assert {(g["count"], g["status"], g["stdout"], tuple(g["agents"])) for g in diff[1:]} == {
        (1, "failed", "disk full\n", ("node-1",)), (1, "success", "v1\n", ("node-3",))}
    rows = report(ws, created["fanout_id"])["agents"]
    assert {r["agent"]: r["exit_code"] for r in rows}["node-1"] == 1
    assert all(r["duration_ms"] == 12 for r in rows)


def test_cancel_fanout_cancels_pending_and_asks_running_to_stop(app: Flask,
                                                                ws: Workspace) -> None:
    names = [f"node-{i}" for i in range(4)]
    agents = fleet(ws, {name: [] for name in names})
    created = fan_out(ws, agents=names, max_concurrency=2)
    [running] = agents["node-0"].poll_jobs()
    agents["node-0"].start(running["job_id"])
    response = ws.client.post(f"/fanouts/{created['fanout_id']}/cancel", headers=ws.headers)
    assert response.status_code == 200, response.json
    state = response.json
    assert state["stop_reason"] == "cancelled" and not state["done"]
    assert [r["status"] for r in state["agents"]] == ["running"] + ["cancelled"] * 3
    assert agents["node-1"].poll_jobs() == [], "the queued one was withdrawn"
    beat = agents["node-0"].heartbeat(running=[running["job_id"]]).json
    assert beat["commands"] == [{"type": "cancel", "job_id": running["job_id"]}]
    agents["node-0"].result(running["job_id"], "cancelled", exit_code=None)
    final = report(ws, created["fanout_id"])
    assert final["done"] and final["status"] == "cancelled"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Event).where(
            Event.type == "fanout.completed")).scalar() == 1
    again = ws.client.post(f"/fanouts/{created['fanout_id']}/cancel", headers=ws.headers)
    assert again.status_code == 200 and again.json["status"] == "cancelled"


def test_list_fanouts_pages_newest_first(ws: Workspace) -> None:
    fleet(ws, {"web-1": []})
    ids = [fan_out(ws, agents=["web-1"])["fanout_id"] for _ in range(3)]
    first = ws.client.get("/fanouts?limit=2", headers=ws.headers).json
    assert [f["fanout_id"] for f in first["fanouts"]] == ids[::-1][:2]
    assert first["fanouts"][0]["counts"]["pending"] == 1
    second = ws.client.get(f"/fanouts?limit=2&cursor={first['next_cursor']}",
                           headers=ws.headers).json
    assert [f["fanout_id"] for f in second["fanouts"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_idempotency_key_returns_the_first_fanout(app: Flask, ws: Workspace) -> None:
    fleet(ws, {"web-1": [], "web-2": []})
    first = fan_out(ws, agents=["web-1", "web-2"], idempotency_key="rollout-7")
    again = fan_out(ws, 200, agents=["web-1", "web-2"], idempotency_key="rollout-7")
    assert again == first
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Job)).scalar() == 2
