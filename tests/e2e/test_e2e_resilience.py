"""Failures end to end: killed agents, restarted and doubled hubs, a flushed Redis, bad keys."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from orchestrator.extensions import db
from orchestrator.models import Event, Job
from tests.e2e.conftest import AgentProc, LiveHub, Maintenance
from tests.e2e.proc_helpers import wait_for
from tests.e2e.test_e2e_jobs import job, trigger, wait_job

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def agent_status(hub: LiveHub, token: str, name: str) -> str:
    _, fleet = hub.call("GET", "/agents", token)
    return fleet[name]["status"]


def test_agent_killed_mid_job_fails_it_as_agent_lost_and_goes_offline(
        app: Flask, live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agent = start_agent("doomed", operator["agent_key"](), live_hub)
    job_id = trigger(live_hub, token, agent.name, "sleep.sh", params={"seconds": 60})
    wait_job(live_hub, token, job_id, ("running",))
    assert agent_status(live_hub, token, agent.name) == "online"
    agent.stop(signal.SIGKILL)
    lost = wait_job(live_hub, token, job_id, timeout=20)
    assert lost["status"] == "failed" and lost["error"] == "agent_lost"
    wait_for(lambda: agent_status(live_hub, token, agent.name) == "offline", 15,
             what="the agent to be offline")
    with app.app_context():
        offline = db.session.execute(db.select(Event).where(Event.type == "agent.offline"))
        assert [e.subject for e in offline.scalars()] == [agent.name]


def test_offline_agent_comes_back_and_runs_what_waited(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agent = start_agent("napper", operator["agent_key"](), live_hub)
    agent.stop()
    wait_for(lambda: agent_status(live_hub, token, agent.name) == "offline", 15,
             what="offline detection")
    job_id = trigger(live_hub, token, agent.name, "hello.sh")
    time.sleep(1)
    assert job(live_hub, token, job_id)["status"] == "pending", "waits for its agent"
    agent.start()
    assert wait_job(live_hub, token, job_id)["status"] == "success"
    assert agent_status(live_hub, token, agent.name) == "online"


def test_hub_restart_mid_job_keeps_the_result(
        start_hub: Callable[..., LiveHub], maintenance: Maintenance,
        operator: dict[str, Any], start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    # A long liveness window, so the job's lease outlives the hub's downtime.
    hub = start_hub(OFFLINE_AFTER_MISSED="30")
    agent = start_agent("steady", operator["agent_key"](), hub)
    job_id = trigger(hub, token, agent.name, "sleep.sh", params={"seconds": 4})
    wait_job(hub, token, job_id, ("running",))
    hub.stop()
    time.sleep(4)  # the script finishes while the hub is down: its result waits in the spool
    hub.start()
    done = wait_job(hub, token, job_id, timeout=30)
    assert done["status"] == "success", done
    assert "done sleeping" in done["stdout"]


def test_pending_jobs_survive_a_redis_flush(
        live_hub: LiveHub, operator: dict[str, Any], redis_url: str,
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agent = start_agent("flushed", operator["agent_key"](), live_hub)
    agent.stop()
    job_ids = [trigger(live_hub, token, agent.name, "hello.sh") for _ in range(2)]
    redis.Redis.from_url(redis_url).flushdb()
    agent.start()
    for job_id in job_ids:
        assert wait_job(live_hub, token, job_id, timeout=30)["status"] == "success"


def test_an_agent_key_cannot_act_as_another_agent(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    key = operator["agent_key"]()
    start_agent("rightful", key, live_hub)
    impostor = start_agent("impostor", key, live_hub, wait=False)
    assert impostor.proc is not None
    code = impostor.proc.wait(30)
    assert code != 0
    assert "agent_name_mismatch" in impostor.output() or "belongs to agent" in impostor.output()
    _, fleet = live_hub.call("GET", "/agents", operator["token"])
    assert list(fleet) == ["rightful"]


def test_two_hubs_share_the_work_and_run_it_once(
        app: Flask, start_hub: Callable[..., LiveHub], maintenance: Maintenance,
        operator: dict[str, Any], start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    front, back = start_hub("front"), start_hub("back")
    agent = start_agent("replicated", operator["agent_key"](), back)
    job_ids = [trigger(front, token, agent.name, "hello.sh") for _ in range(3)]
    for job_id in job_ids:
        done = wait_job(front, token, job_id)
        assert done["status"] == "success" and done["stdout"].count(f"job_id={job_id}") == 1
    with app.app_context():
        counts = db.session.execute(db.select(Job.dispatch_count).where(Job.id.in_(job_ids)))
        assert list(counts.scalars()) == [1, 1, 1]
    for job_id in job_ids:
        assert agent.output().count(f"job {job_id} started") == 1
