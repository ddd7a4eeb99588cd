"""Schedules over a fleet, the dead-man's switch, alert rules and the audit log, end to end:
a live hub, real agents, a real ``scriptmesh worker`` / ``scheduler`` where the README
runs them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from orchestrator.extensions import db
from orchestrator.models import Event, Schedule
from orchestrator.scheduler import LEADER_KEY
from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import BIN, Proc, process_env, wait_for
from tests.e2e.test_e2e_jobs import trigger, wait_job
from tests.e2e.test_fanout_live import break_deploy, start_fleet, wait_done
from tests.orchestrator.receiver import Receiver

#: deploy.sh declares a required version.
VERSION = {"version": "v1.0.0"}

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def start_background(hub_env: dict[str, str], redis_url: str, tmp_path: Path,
                     *names: str) -> list[Proc]:
    redis.Redis.from_url(redis_url).delete(LEADER_KEY)
    env = process_env(hub_env, SCRIPTMESH_LEADER_TTL="2")
    return [Proc([str(BIN / "scriptmesh"), name], env, tmp_path / f"{name}.log")
            for name in names]


@pytest.fixture
def worker(hub_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[None]:
    """``scriptmesh worker`` as the README runs it (notifications)."""
    procs = start_background(hub_env, redis_url, tmp_path, "worker")
    yield
    for proc in procs:
        proc.stop()


@pytest.fixture
def scheduler(hub_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[None]:
    """``scriptmesh scheduler`` as the README runs it (fires schedules)."""
    procs = start_background(hub_env, redis_url, tmp_path, "scheduler")
    yield
    for proc in procs:
        proc.stop()


def events(app: Flask, type_: str, subject: str | None = None) -> list[Event]:
    with app.app_context():
        query = db.select(Event).where(Event.type == type_).execution_options(all_tenants=True)
        if subject:
            query = query.where(Event.subject == subject)
        found = list(db.session.execute(query).scalars())
        db.session.remove()
        return found


def test_a_schedule_over_tags_fires_a_fan_out_with_grouped_results(
        app: Flask, scheduler: None, live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {"web-1": "web", "web-2": "web", "db-1": "db"})
    status, refused = live_hub.call("POST", "/schedules", token, {
        "tags": ["web"], "script": "nope.sh", "cron_expression": "0 2 * * *"})
    assert status == 422 and "whitelists" in refused["error"]["message"], refused
    status, schedule = live_hub.call("POST", "/schedules", token, {
        "tags": ["web"], "script": "deploy.sh", "params": {"version": "v9"},
        "cron_expression": "0 2 * * *", "max_concurrency": 1, "max_errors": 0})
    assert status == 201, schedule
    with app.app_context():  # make the next fire time due now; the real scheduler fires it
        row = db.session.get(Schedule, schedule["id"])
        row.next_fire = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()

    def fired() -> Any:
        _, body = live_hub.call("GET", f"/schedules/{schedule['id']}/runs", token)
        return body["runs"] and body["runs"][0].get("fanout_id") and body["runs"][0]

    run = wait_for(fired, 30, what="the schedule's fan-out")
    done = wait_done(live_hub, token, run["fanout_id"])
    assert done["status"] == "success" and done["schedule_id"] == schedule["id"]
    assert done["max_concurrency"] == "1" and done["max_errors"] == "0"
    assert [(g["count"], sorted(g["agents"])) for g in done["diff"]] == [
        (2, ["web-1", "web-2"])]
    assert sorted(j["agent"] for j in run["jobs"]) == ["web-1", "web-2"]


def test_no_success_in_the_window_raises_schedule_missed_and_a_backfill_recovers(
        app: Flask, live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]  # no scheduler runs: nothing fires
    agent = start_agent("nightly", operator["agent_key"](), live_hub)
    status, schedule = live_hub.call("POST", "/schedules", token, {
        "agent": agent.name, "script": "hello.sh", "cron_expression": "* * * * *",
        "expect_success_every": "4s"})
    assert status == 201 and schedule["expect_success_every"] == 4, schedule
    created = datetime.now(UTC)

    def missed() -> Any:
        _, body = live_hub.call("GET", f"/schedules/{schedule['id']}/missed", token)
        return body["missed"]

    (entry,) = wait_for(missed, 15, what="schedule.missed")
    assert "expect_success_every" in entry["reason"]
    (event,) = events(app, "schedule.missed", schedule["id"])
    assert (event.created_at - created).total_seconds() < 4 + 3  # the window plus upkeep
    assert len(missed()) == 1, "one open problem is announced once"

    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    status, body = live_hub.call("POST", f"/schedules/{schedule['id']}/backfill", token, {
        "from": start.isoformat(), "to": (start + timedelta(seconds=59)).isoformat()})
    assert status == 201 and len(body["runs"]) == 1, body
    assert wait_job(live_hub, token, body["runs"][0]["job_ids"][0])["status"] == "success"
    wait_for(lambda: events(app, "schedule.recovered", schedule["id"]), 15,
             what="schedule.recovered")
    status, body = live_hub.call("POST", f"/schedules/{schedule['id']}/backfill", token, {
        "from": start.isoformat(), "to": (start - timedelta(minutes=1)).isoformat()})
    assert status == 422


def test_after_consecutive_three_alerts_once_on_the_third_failure_and_once_on_recovery(
        worker: None, live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agent = start_agent("flaky", operator["agent_key"](), live_hub)
    user_jwt = operator["headers"]["Authorization"].removeprefix("Bearer ")
    with Receiver() as receiver:
        status, body = live_hub.call("POST", "/integrations", user_jwt, {
            "type": "webhook", "name": "oncall",
            "config": {"url": receiver.url + "/alert", "events": ["job.failed"],
                       "rules": [{"event": "job.failed", "after_consecutive": 3}]}})
        assert status == 201, body
        status, bad = live_hub.call("POST", "/integrations", user_jwt, {
            "type": "webhook", "name": "bad", "config": {
                "url": receiver.url, "events": ["job.failed"],
                "rules": [{"event": "job.failed", "after_consecutive": 0}]}})
        assert status == 422 and "rules" in str(bad["error"]), bad
        break_deploy(agent)
        failed = []
        for _ in range(5):
            failed.append(trigger(live_hub, token, agent.name, "deploy.sh", params=VERSION))
            assert wait_job(live_hub, token, failed[-1])["status"] == "failed"
        wait_for(lambda: len(receiver.requests) >= 1, 20, what="the alert")
        (agent.scripts_dir / "deploy.sh").write_text("#!/usr/bin/env bash\necho ok\n")
        fixed = trigger(live_hub, token, agent.name, "deploy.sh", params=VERSION)
        assert wait_job(live_hub, token, fixed)["status"] == "success"
        wait_for(lambda: len(receiver.requests) >= 2, 20, what="the recovery")
        again = trigger(live_hub, token, agent.name, "deploy.sh", params=VERSION)
        assert wait_job(live_hub, token, again)["status"] == "success"
        time.sleep(3)  # a second success is no news
        sent = [(r.json["type"], r.json["data"].get("job_id")) for r in receiver.requests]
    assert sent == [("job.failed", failed[2]), ("job.recovered", fixed)], sent


def test_the_audit_log_records_each_action_with_actor_and_time(
        live_hub: LiveHub, make_user: Callable[..., dict[str, Any]],
        make_api_key: Callable[..., str], start_agent: Callable[..., AgentProc]) -> None:
    admin = make_user(admin=True)
    key = make_api_key(admin["user_id"], scope="admin")
    operator_key = make_api_key(admin["user_id"], scope="operator")
    agent = start_agent("audited", make_api_key(admin["user_id"], scope="agent"), live_hub)
    before = datetime.now(UTC) - timedelta(seconds=1)
    status, _ = live_hub.call("POST", "/auth/login", "", {"email": admin["email"],
                                                         "password": admin["password"]})
    assert status == 200
    status, created = live_hub.call("POST", "/auth/api-keys", key, {"name": "ci",
                                                                    "scope": "read"})
    assert status == 201, created
    assert live_hub.call("DELETE", f"/auth/api-keys/{created['id']}", key)[0] in (200, 204)
    job_id = trigger(live_hub, key, agent.name, "sleep.sh", params={"seconds": 20})
    assert live_hub.call("POST", f"/jobs/{job_id}/cancel", key)[0] in (200, 202)
    assert live_hub.call("POST", f"/agents/{agent.name}/pause", key, {"note": "x"})[0] == 200
    assert live_hub.call("POST", f"/agents/{agent.name}/resume", key)[0] == 200
    status, schedule = live_hub.call("POST", "/schedules", key, {
        "agent": agent.name, "script": "hello.sh", "cron_expression": "0 2 * * *"})
    assert status == 201

    status, page = live_hub.call("GET", "/audit?limit=100", key)
    assert status == 200, page
    actions = [entry["action"] for entry in reversed(page["entries"])]
    assert actions == ["auth.sign_in", "api_key.create", "api_key.revoke", "job.trigger",
                       "job.cancel", "agent.pause", "agent.resume", "schedule.create"], actions
    for entry in page["entries"]:
        assert entry["actor"] == admin["user_id"], entry
        assert datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00")) >= before
    assert page["entries"][0]["subject"] == schedule["id"]
    assert page["entries"][3]["subject"] == job_id  # the cancel

    status, first = live_hub.call("GET", "/audit?limit=3", key)
    status, second = live_hub.call("GET", f"/audit?limit=3&cursor={first['next_cursor']}", key)
    assert [e["action"] for e in first["entries"] + second["entries"]] == list(
        reversed(actions))[:6]
    status, only = live_hub.call("GET", "/audit?action=job.trigger", key)
    assert [e["subject"] for e in only["entries"]] == [job_id]
    assert live_hub.call("GET", "/audit", operator_key)[0] == 403
    other = make_user(admin=True)
    status, theirs = live_hub.call("GET", "/audit", make_api_key(other["user_id"],
                                                                  scope="admin"))
    assert status == 200 and theirs["entries"] == [], "tenant-scoped"
