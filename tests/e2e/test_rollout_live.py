"""Rollout control end to end: approval gates, bake time, pause/resume and re-run of a fan-out
through a live hub and real agents."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import wait_for
from tests.e2e.test_fanout_live import (
    break_deploy,
    fan_out,
    moment,
    report,
    start_fleet,
    wait_done,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BAKE = 3


def test_an_approval_gate_holds_stage_two_after_the_bake_time(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {"canary": "web", "main-1": "web"})
    created = fan_out(live_hub, token, stages=[
        {"agents": ["canary"], "bake_seconds": BAKE},
        {"agents": ["main-1"], "approve": True}])
    fanout_id = created["fanout_id"]
    baking = wait_for(lambda: (r := report(live_hub, token, fanout_id))["gate"] == "baking"
                      and r, 30, what="stage 1 done, baking")
    assert baking["status"] == "baking" and baking["agents"][1]["state"] == "waiting"
    gated = wait_for(lambda: (r := report(live_hub, token, fanout_id))["gate"]
                     == "awaiting_approval" and r, 30, what="awaiting approval")
    canary = gated["agents"][0]
    waited = time.time()
    time.sleep(3)  # the gate holds: nothing of stage 2 starts on its own
    held = report(live_hub, token, fanout_id)
    assert held["status"] == "awaiting_approval" and not held["done"]
    assert held["agents"][1]["status"] == "pending" and held["agents"][1]["held"] is True

    status, approved = live_hub.call("POST", f"/fanouts/{fanout_id}/approve", token)
    assert status == 200, approved
    done = wait_done(live_hub, token, fanout_id)
    assert done["status"] == "success", done
    main = done["agents"][1]
    assert (moment(main["started_at"]) - moment(canary["completed_at"])).total_seconds() >= BAKE
    assert moment(main["started_at"]).timestamp() >= waited
    status, again = live_hub.call("POST", f"/fanouts/{fanout_id}/approve", token)
    assert status == 409 and again["error"]["code"] == "fanout_finished"


def test_pause_stops_new_targets_and_resume_continues(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {f"node-{i}": "fleet" for i in range(3)})
    created = fan_out(live_hub, token, tags=["fleet"], run_script="sleep.sh",
                      params={"seconds": 2}, max_concurrency=1)
    fanout_id = created["fanout_id"]
    wait_for(lambda: report(live_hub, token, fanout_id)["counts"]["running"] == 1, 30,
             what="the first target running")
    status, paused = live_hub.call("POST", f"/fanouts/{fanout_id}/pause", token)
    assert status == 200 and paused["status"] == "paused", paused
    wait_for(lambda: report(live_hub, token, fanout_id)["counts"]["success"] == 1, 30,
             what="the running target finished")
    time.sleep(4)
    held = report(live_hub, token, fanout_id)
    assert held["counts"]["success"] == 1 and held["counts"]["pending"] == 2, held
    assert held["counts"]["running"] == 0 and not held["done"]
    resumed_at = time.time()
    status, resumed = live_hub.call("POST", f"/fanouts/{fanout_id}/resume", token)
    assert status == 200 and resumed["status"] == "running"
    done = wait_done(live_hub, token, fanout_id)
    assert done["status"] == "success"
    later = sorted(done["agents"], key=lambda r: r["started_at"])[1:]
    assert all(moment(r["started_at"]).timestamp() >= resumed_at - 0.5 for r in later)


def test_rerun_runs_exactly_the_failed_and_not_started_agents(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agents = start_fleet(live_hub, operator, start_agent,
                         {f"node-{i}": "fleet" for i in range(4)})
    break_deploy(agents["node-1"])
    created = fan_out(live_hub, token, tags=["fleet"], max_concurrency=1, max_errors=0)
    first = wait_done(live_hub, token, created["fanout_id"])
    assert [(r["agent"], r["state"]) for r in first["agents"]] == [
        ("node-0", "success"), ("node-1", "failed"), ("node-2", "not_started"),
        ("node-3", "not_started")]
    (agents["node-1"].scripts_dir / "deploy.sh").write_text(
        (agents["node-0"].scripts_dir / "deploy.sh").read_text())  # fixed

    status, rerun = live_hub.call("POST", f"/fanouts/{created['fanout_id']}/rerun", token,
                                  {"only": ["failed", "not_started"]})
    assert status == 202, rerun
    assert sorted(j["agent"] for j in rerun["jobs"]) == ["node-1", "node-2", "node-3"]
    done = wait_done(live_hub, token, rerun["fanout_id"])
    assert done["status"] == "success" and done["rerun_of"] == created["fanout_id"]
    assert done["params"] == first["params"]
    status, body = live_hub.call("POST", f"/fanouts/{rerun['fanout_id']}/rerun", token,
                                 {"only": ["failed"]})
    assert status == 422 and body["error"]["code"] == "no_targets"
    status, body = live_hub.call("POST", f"/fanouts/{rerun['fanout_id']}/rerun", token,
                                 {"only": ["bogus"]})
    assert status == 422


def test_a_failing_verify_fails_its_stage_and_a_passing_one_lets_the_next_start(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {"canary": "web", "main-1": "web"})
    stages = [{"agents": ["canary"]}, {"agents": ["main-1"]}]
    failing = fan_out(live_hub, token, stages=[{**stages[0], "verify": "fail.sh"}, stages[1]])
    done = wait_done(live_hub, token, failing["fanout_id"])
    assert done["status"] == "failed" and done["stop_reason"] == "stage_failed", done
    assert [(r["agent"], r["script"], r["status"]) for r in done["agents"]] == [
        ("canary", "deploy.sh", "success"), ("main-1", "deploy.sh", "cancelled"),
        ("canary", "fail.sh", "failed")]
    passing = fan_out(live_hub, token, stages=[{**stages[0], "verify": "hello.sh"}, stages[1]])
    done = wait_done(live_hub, token, passing["fanout_id"])
    assert done["status"] == "success", done
    rows = {(r["agent"], r["script"]): r for r in done["agents"]}
    assert moment(rows[("main-1", "deploy.sh")]["started_at"]) >= moment(
        rows[("canary", "hello.sh")]["completed_at"])
