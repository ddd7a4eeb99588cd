"""/schedules: validation, firing due times, missed fires, overlap, pause/resume, run-now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Event, Job, Schedule, utcnow
from orchestrator.services import scheduling
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def create(ws: Workspace, **body: Any) -> dict[str, Any]:
    payload = {"agent": "agent-1", "script": "backup.sh", "cron_expression": "0 2 * * *",
               **body}
    response = ws.client.post("/schedules", json=payload, headers=ws.headers)
    assert response.status_code == 201, response.json
    return response.json


def set_next_fire(app: Flask, schedule_id: str, moment: datetime) -> None:
    with app.app_context():
        db.session.get(Schedule, schedule_id).next_fire = moment
        db.session.commit()


def fire(app: Flask, now: datetime | None = None) -> dict[str, int]:
    with app.app_context():
        return scheduling.fire_due_schedules(now)


def runs(ws: Workspace, schedule_id: str) -> list[dict[str, Any]]:
    response = ws.client.get(f"/schedules/{schedule_id}/runs", headers=ws.headers)
    assert response.status_code == 200
    return response.json["runs"]


def job_count(app: Flask) -> int:
    with app.app_context():
        return db.session.query(Job).count()


def test_create_with_the_documented_body(ws: Workspace, client: FlaskClient) -> None:
    ws.agent()
    response = client.post("/schedules", headers=ws.headers, data=(
        '{"agent": "agent-1", "script": "backup.sh", "cron_expression": "0 2 * * *",'
        ' "params": {"target": "s3://my-bucket"},'
        ' "webhook_url": "https://hooks.example.com/job-done", "timeout": 600}'))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["id"].startswith("sched_") and body["cron_expression"] == "0 2 * * *"
    next_fire = datetime.fromisoformat(body["next_fire"].replace("Z", "+00:00"))
    assert body["next_fire"].endswith("Z") and next_fire.hour == 2 and next_fire > utcnow()
    assert body["timezone"] == "UTC" and body["overlap_policy"] == "skip"
    listed = client.get("/schedules", headers=ws.headers).json
    assert [s["id"] for s in listed["schedules"]] == [body["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"cron_expression": "61 2 * * *"}, "cron_expression.minute"),
    ({"cron_expression": "0 2 * *"}, "cron_expression"),
    ({"cron_expression": "0 2 * * 9"}, "cron_expression.day_of_week"),
    ({"timezone": "Nowhere/City"}, "timezone"),
    ({"agent": "ghost"}, "agent"),
    ({"overlap_policy": "queue"}, "overlap_policy"),
])
def test_invalid_schedules_are_422_naming_the_field(ws: Workspace, body: dict[str, Any],
                                                    field: str) -> None:
    ws.agent()
    payload = {"agent": "agent-1", "script": "backup.sh", "cron_expression": "0 2 * * *",
               **body}
    response = ws.client.post("/schedules", json=payload, headers=ws.headers)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]["fields"]


def test_next_fire_follows_the_schedules_timezone(ws: Workspace) -> None:
    ws.agent()
    body = create(ws, cron_expression="15 2 * * *", timezone="America/New_York")
    moment = datetime.fromisoformat(body["next_fire"].replace("Z", "+00:00"))
    local = moment.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) in ((2, 15), (3, 0))  # 03:00 on a spring-forward night
    assert body["timezone"] == "America/New_York"


def test_a_due_schedule_creates_its_job_once(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    schedule = create(ws, params={"target": "s3://b"}, timeout=600)
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)

    assert fire(app, due + timedelta(seconds=1)) == {"fired": 1}
    assert fire(app, due + timedelta(seconds=2)) == {}, "next_fire moved on"
    (job,) = sim.poll_jobs()
    assert job["script"] == "backup.sh" and job["params"] == {"target": "s3://b"}
    assert job["timeout"] == 600
    (run,) = runs(ws, schedule["id"])
    assert run["outcome"] == "fired" and run["fire_time"] == "2026-03-10T02:00:00.000Z"
    assert run["jobs"] == [{"job_id": job["job_id"], "agent": "agent-1", "status": "pending",
                            "exit_code": None}]
    got = ws.client.get(f"/schedules/{schedule['id']}", headers=ws.headers).json
    assert got["next_fire"] == "2026-03-11T02:00:00.000Z"
    assert got["last_fire_at"] is not None


def test_overlap_skip_records_a_skip_while_the_previous_job_runs(app: Flask,
                                                                 ws: Workspace) -> None:
    sim = ws.agent()
    schedule = create(ws, cron_expression="*/5 * * * *")
    start = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], start)
    fire(app, start)
    job_id = sim.take()["job_id"]  # running now
    fire(app, start + timedelta(minutes=5))
    assert job_count(app) == 1
    latest, first = runs(ws, schedule["id"])
    assert latest["outcome"] == "skipped" and latest["jobs"] == []
    assert "previous job is still running" in latest["reason"]
    sim.result(job_id)
    fire(app, start + timedelta(minutes=10))
    assert job_count(app) == 2
    assert runs(ws, schedule["id"])[0]["outcome"] == "fired"


def test_overlap_allow_starts_anyway(app: Flask, ws: Workspace) -> None:
    ws.agent()
    schedule = create(ws, cron_expression="*/5 * * * *", overlap_policy="allow")
    start = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], start)
    fire(app, start)
    fire(app, start + timedelta(minutes=5))
    assert job_count(app) == 2


def test_scheduler_down_past_the_grace_records_missed_fires(app: Flask, ws: Workspace) -> None:
    ws.agent()
    schedule = create(ws, cron_expression="0 * * * *", misfire_grace_time=300)
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)

    # The scheduler comes back at 04:30: 02:00, 03:00 and 04:00 all passed > 300 s ago.
    assert fire(app, due + timedelta(hours=2, minutes=30)) == {"missed": 1}
    assert job_count(app) == 0
    recorded = runs(ws, schedule["id"])
    assert [r["outcome"] for r in recorded] == ["missed"] * 3
    assert [r["fire_time"][11:16] for r in recorded] == ["04:00", "03:00", "02:00"]
    with app.app_context():
        (event,) = db.session.query(Event).filter_by(type="schedule.missed").all()
        assert event.subject == schedule["id"] and event.payload["missed"] == 3
        assert db.session.get(Schedule, schedule["id"]).next_fire == due + timedelta(hours=3)


def test_late_fire_within_grace_runs_once_with_coalesce(app: Flask, ws: Workspace) -> None:
    ws.agent()
    schedule = create(ws, cron_expression="*/10 * * * *", misfire_grace_time=3600,
                      overlap_policy="allow")
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)

    fire(app, due + timedelta(minutes=25))  # 02:00, 02:10, 02:20 due, all within grace
    assert job_count(app) == 1
    outcomes = [(r["outcome"], r["fire_time"][11:16]) for r in runs(ws, schedule["id"])]
    assert outcomes == [("fired", "02:20"), ("coalesced", "02:10"), ("coalesced", "02:00")]


def test_without_coalesce_each_late_fire_runs(app: Flask, ws: Workspace) -> None:
    ws.agent()
    schedule = create(ws, cron_expression="*/10 * * * *", misfire_grace_time=3600,
                      coalesce=False, overlap_policy="allow")
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)
    fire(app, due + timedelta(minutes=25))
    assert job_count(app) == 3


def test_pause_resume_patch_run_now_delete(app: Flask, ws: Workspace,
                                           client: FlaskClient) -> None:
    sim = ws.agent()
    schedule = create(ws)
    sid = schedule["id"]
    paused = client.post(f"/schedules/{sid}/pause", headers=ws.headers).json
    assert paused["enabled"] is False and paused["next_fire"] is None
    assert fire(app, utcnow() + timedelta(days=2)) == {}
    resumed = client.post(f"/schedules/{sid}/resume", headers=ws.headers).json
    assert resumed["enabled"] is True and resumed["next_fire"]

    patched = client.patch(f"/schedules/{sid}", headers=ws.headers,
                           json={"cron_expression": "30 4 * * *", "timezone": "Europe/Paris"})
    assert patched.status_code == 200
    assert patched.json["cron_expression"] == "30 4 * * *"
    assert patched.json["next_fire"][11:16] in ("02:30", "03:30")
    bad = client.patch(f"/schedules/{sid}", headers=ws.headers, json={"cron_expression": "x"})
    assert bad.status_code == 422

    now = client.post(f"/schedules/{sid}/run-now", headers=ws.headers)
    assert now.status_code == 201 and now.json["outcome"] == "manual"
    (job,) = sim.poll_jobs()
    assert job["job_id"] == now.json["job_ids"][0]
    assert client.delete(f"/schedules/{sid}", headers=ws.headers).status_code == 204
    assert client.get(f"/schedules/{sid}", headers=ws.headers).status_code == 404


def test_schedules_are_per_tenant(ws: Workspace, client: FlaskClient, make_user: Any) -> None:
    ws.agent()
    schedule = create(ws)
    stranger = make_user()["headers"]
    assert client.get(f"/schedules/{schedule['id']}", headers=stranger).status_code == 404
    assert client.get("/schedules", headers=stranger).json["schedules"] == []
    assert client.post(f"/schedules/{schedule['id']}/run-now",
                       headers=stranger).status_code == 404
    assert client.get("/schedules").status_code == 401


def test_read_keys_cannot_create(ws: Workspace, client: FlaskClient) -> None:
    read_key = ws.new_key(ws.user["user_id"], scope="read")
    response = client.post("/schedules", headers={"Authorization": f"Bearer {read_key}"},
                           json={"agent": "a", "script": "s", "cron_expression": "* * * * *"})
    assert response.status_code == 403


def test_tag_schedules_fire_on_every_online_agent_with_the_tags(app: Flask,
                                                                ws: Workspace) -> None:
    ws.agent("web-1")
    ws.agent("web-2")
    schedule = create(ws, agent=None, tags=["test"], cron_expression="*/5 * * * *")
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)
    fire(app, due)
    (run,) = runs(ws, schedule["id"])
    assert sorted(j["agent"] for j in run["jobs"]) == ["web-1", "web-2"]


def test_a_script_the_agent_does_not_whitelist_is_refused_at_creation(ws: Workspace) -> None:
    ws.agent(scripts=("hello.sh",))
    response = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "not-in-manifest.sh", "cron_expression": "0 2 * * *"})
    assert response.status_code == 422, response.json
    assert "does not whitelist" in response.json["error"]["message"]
    assert "agent" in response.json["error"]["details"]["fields"]


def test_a_failing_fire_is_recorded(app: Flask, ws: Workspace) -> None:
    sim = ws.agent(scripts=("hello.sh", "not-in-manifest.sh"))
    schedule = create(ws, script="not-in-manifest.sh")
    sim.scripts = ("hello.sh",)  # the manifest changed after the schedule was created
    assert sim.register().status_code == 200
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)
    fire(app, due)
    (run,) = runs(ws, schedule["id"])
    assert run["outcome"] == "failed" and "manifest" in run["reason"]


def test_firing_uses_the_schedules_own_tenant(app: Flask, ws: Workspace, client: FlaskClient,
                                              make_user: Any, make_api_key: Any) -> None:
    mine = ws.agent()  # both tenants name their agent "agent-1"
    other = workspace(client, make_user, make_api_key)
    theirs = other.agent()
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    for space in (ws, other):
        set_next_fire(app, create(space)["id"], due)
    assert fire(app, due) == {"fired": 2}
    assert len(mine.poll_jobs()) == 1 and len(theirs.poll_jobs()) == 1


def post_schedule(ws: Workspace, **body: Any) -> Any:
    return ws.client.post("/schedules", json={"cron_expression": "0 2 * * *", **body},
                          headers=ws.headers)


def test_a_flow_schedule_fires_a_flow_job(app: Flask, ws: Workspace) -> None:
    sim = ws.agent(register=False)
    flows = {"scripts": [], "flows": [{"name": "health", "description": "checks"}]}
    assert sim.register(manifest=flows).status_code == 200
    response = post_schedule(ws, agent="agent-1", run_flow="health",
                             variables={"base_url": "http://svc"})
    assert response.status_code == 201, response.json
    schedule = response.json
    assert (schedule["kind"], schedule["run_flow"]) == ("flow", "health")
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, schedule["id"], due)

    assert fire(app, due) == {"fired": 1}
    (job,) = sim.poll_jobs()
    assert (job["kind"], job["flow"], job["variables"]) == ("flow", "health",
                                                             {"base_url": "http://svc"})


def test_a_pool_schedule_queues_one_job_that_one_member_takes(app: Flask, ws: Workspace) -> None:
    first, second = ws.agent("web-1"), ws.agent("web-2")
    response = post_schedule(ws, pool="test", script="hello.sh")
    assert response.status_code == 201, response.json
    due = datetime(2026, 3, 10, 2, tzinfo=UTC)
    set_next_fire(app, response.json["id"], due)

    assert fire(app, due) == {"fired": 1}
    taken = first.poll_jobs() + second.poll_jobs()
    assert len(taken) == 1 and taken[0]["script"] == "hello.sh"
    (run,) = runs(ws, response.json["id"])
    assert run["outcome"] == "fired" and len(run["jobs"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"script": "backup.sh", "run_flow": "health"}, "run_flow"),
    ({"script": "backup.sh", "variables": {"a": 1}}, "variables"),
    ({}, "script"),
])
def test_what_to_run_is_exactly_one_of_script_or_run_flow(ws: Workspace, body: dict[str, Any],
                                                           field: str) -> None:
    ws.agent()
    response = post_schedule(ws, agent="agent-1", **body)
    assert response.status_code == 422, response.json
    assert field in str(response.json["error"]), response.json


def test_flow_schedule_variables_are_validated_like_trigger_variables(ws: Workspace) -> None:
    ws.agent()
    response = post_schedule(ws, agent="agent-1", run_flow="health",
                             variables={"not a name!": 1})
    assert response.status_code == 422, response.json
    assert "variables" in response.json["error"]["details"]["fields"]
