"""Locks, fleet-wide concurrency groups and agent pause, end to end: a live hub, real agents.

Overlap is judged on the scripts' own printed timestamps, not on the hub's
records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.fleet_helpers import add_stamp_scripts, interval, most_at_once
from tests.e2e.test_e2e_jobs import job, trigger, wait_job
from tests.e2e.test_fanout_live import fan_out, wait_done

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_jobs_with_one_lock_never_overlap_on_an_agent_while_lockless_jobs_do(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agent = start_agent("locky", operator["agent_key"](), live_hub, WORKERS="3",
                        setup=lambda a: add_stamp_scripts(a, pkg="pkg"))
    free = [trigger(live_hub, token, agent.name, "stamp.sh", params={"seconds": 1.5})
            for _ in range(2)]
    free_runs = [interval(wait_job(live_hub, token, job_id)) for job_id in free]
    assert most_at_once(free_runs) == 2, f"lock-less jobs ran one at a time: {free_runs}"

    # Two with an explicit lock, two through the manifest's default lock for pkg.sh.
    locked = [trigger(live_hub, token, agent.name, "stamp.sh", lock="pkg",
                      params={"seconds": 1}) for _ in range(2)]
    locked += [trigger(live_hub, token, agent.name, "pkg.sh", params={"seconds": 1})
               for _ in range(2)]
    status, agents = live_hub.call("GET", "/agents", token)
    assert status == 200 and "locks" in agents["locky"], agents
    finished = [wait_job(live_hub, token, job_id, timeout=60) for job_id in locked]
    assert [found["status"] for found in finished] == ["success"] * 4, finished
    runs = sorted(interval(found) for found in finished)
    assert most_at_once(runs) == 1, f"jobs holding lock pkg overlapped: {runs}"
    assert all(later[0] >= earlier[1] for earlier, later in zip(runs, runs[1:], strict=False))


def test_a_fleet_wide_concurrency_limit_of_two_holds_over_twenty_jobs(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    names = [f"limit-{i}" for i in range(3)]
    for name in names:
        start_agent(name, operator["agent_key"](), live_hub, WORKERS="3",
                    setup=add_stamp_scripts)
    job_ids = [trigger(live_hub, token, names[i % 3], "stamp.sh", params={"seconds": 0.4},
                       concurrency_group="db-migrations", concurrency_limit=2)
               for i in range(20)]
    finished = [wait_job(live_hub, token, job_id, timeout=120) for job_id in job_ids]
    assert [found["status"] for found in finished] == ["success"] * 20
    runs = [interval(found) for found in finished]
    assert most_at_once(runs) == 2, f"the group ran {most_at_once(runs)} at once"
    assert len({found["agent"] for found in finished}) == 3


def test_a_paused_agent_receives_nothing_until_resumed(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    paused = start_agent("resting", operator["agent_key"](), live_hub, AGENT_TAGS="pool")
    start_agent("working", operator["agent_key"](), live_hub, AGENT_TAGS="pool")
    status, body = live_hub.call("POST", "/agents/resting/pause", token,
                                 {"note": "kernel upgrade"})
    assert status == 200 and body["paused"] is True and body["pause_note"] == "kernel upgrade"
    _, fleet = live_hub.call("GET", "/agents", token)
    assert fleet["resting"]["paused"] is True and fleet["working"]["paused"] is False

    waiting = trigger(live_hub, token, paused.name, "hello.sh")
    created = fan_out(live_hub, token, tags=["pool"], run_script="hello.sh", params={})
    assert created["skipped"] == [{"agent": "resting", "reason": "paused"}]
    assert [j["agent"] for j in created["jobs"]] == ["working"]
    pooled = [live_hub.call("POST", "/trigger-script", token,
                            {"pool": "pool", "run_script": "hello.sh"})[1]["job_id"]
              for _ in range(3)]
    assert {wait_job(live_hub, token, j)["agent"] for j in pooled} == {"working"}
    wait_done(live_hub, token, created["fanout_id"])
    time.sleep(6)  # more than a poll cycle: the paused agent keeps polling
    held = job(live_hub, token, waiting)
    assert held["status"] == "pending" and held["dispatch_count"] == 0, held
    assert "job " + waiting not in paused.output()

    status, body = live_hub.call("POST", "/agents/resting/resume", token)
    assert status == 200 and body["paused"] is False
    assert wait_job(live_hub, token, waiting, timeout=30)["status"] == "success"


def test_pause_of_an_unknown_agent_is_a_clear_404(live_hub: LiveHub,
                                                   operator: dict[str, Any]) -> None:
    status, body = live_hub.call("POST", "/agents/nobody/pause", operator["token"], {})
    assert status == 404 and body["error"]["code"] == "agent_not_found"
    status, body = live_hub.call("POST", "/agents/nobody/pause", operator["token"],
                                 {"until": "not a time"})
    assert status == 422 and "until" in str(body["error"]["details"])
