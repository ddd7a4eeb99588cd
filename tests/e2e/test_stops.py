"""Stops that lose and leave nothing: hub SIGTERM, agent kill -9 and restart, hung-up polls."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from orchestrator.extensions import db
from orchestrator.models import Job
from tests.e2e.conftest import AgentProc, LiveHub, Maintenance
from tests.e2e.proc_helpers import http, pid_alive, wait_for
from tests.e2e.test_e2e_jobs import job, trigger, wait_job

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: The issue's bound for a hub or a dev stack to stop.
STOP_WITHIN = 3.0


def script_child_pid(hub: LiveHub, token: str, job_id: str) -> int:
    """The pid of sleep.sh's background child, once its output reached the hub."""
    found = wait_for(lambda: re.search(r"child_pid=(\d+)", job(hub, token, job_id)["stdout"]),
                     15, what=f"job {job_id} printing its child's pid")
    return int(found.group(1))


def test_hub_sigterm_mid_job_answers_polls_stops_fast_and_keeps_the_result(
        start_hub: Callable[..., LiveHub], maintenance: Maintenance,
        operator: dict[str, Any], start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    # The production graceful timeout (30 s): only answering the polls makes it fast.
    hub = start_hub(graceful_timeout=None, OFFLINE_AFTER_MISSED="30", POLL_WAIT="25")
    agent = start_agent("steady", operator["agent_key"](), hub, POLL_WAIT="25")
    job_id = trigger(hub, token, agent.name, "sleep.sh", params={"seconds": 3})
    wait_job(hub, token, job_id, ("running",))
    time.sleep(0.5)  # the agent's second worker is now waiting in a long-poll
    started = time.monotonic()
    hub.proc.send(signal.SIGTERM)
    hub.proc.wait(15)
    took = time.monotonic() - started
    log = hub.proc.output()
    hub.stop()
    assert took <= STOP_WITHIN, f"hub took {took:.1f}s to stop:\n{log}"
    assert "answered 1 waiting request(s)" in log, log
    time.sleep(3)  # the script finishes while the hub is down: its result waits in the spool
    hub.start()
    done = wait_job(hub, token, job_id, timeout=30)
    assert done["status"] == "success", done
    assert "done sleeping" in done["stdout"]
    wait_for(lambda: "is reachable again" in agent.output(), 15,
             what="the agent to log that the hub is back")
    # Once per outage, not per request: after the last failed call, exactly one line (a
    # stopping hub may still have answered once, a flap that is an outage of its own).
    after_outage = agent.output().rsplit("cannot connect", 1)[-1]
    assert after_outage.count("is reachable again") == 1, agent.output()
    # Quieter logs: people's requests are logged, agents' polls and heartbeats are not.
    assert "POST /trigger-script" in log
    assert "/agent/poll" not in log and "/agent/heartbeat" not in log, log


def test_agent_kill9_loses_its_job_within_15s_and_leaves_no_script_process(
        start_hub: Callable[..., LiveHub], maintenance: Maintenance,
        operator: dict[str, Any], start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    # The hub's own interval is 60 s: only the agent's reported 2 s makes this quick.
    hub = start_hub(HEARTBEAT_INTERVAL="60")
    agent = start_agent("doomed", operator["agent_key"](), hub, HEARTBEAT_INTERVAL="2")
    job_id = trigger(hub, token, agent.name, "sleep.sh", params={"seconds": 120})
    wait_job(hub, token, job_id, ("running",))
    child = script_child_pid(hub, token, job_id)
    os.kill(agent.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not pid_alive(child), 5, what="the script's child to die with the agent")
    lost = wait_job(hub, token, job_id, timeout=15)
    assert lost["status"] == "failed" and lost["error"] == "agent_lost", lost
    assert time.monotonic() - killed_at <= 15


def test_agent_restarted_mid_job_kills_the_leftover_and_ends_the_job_at_registration(
        start_hub: Callable[..., LiveHub], maintenance: Maintenance,
        operator: dict[str, Any], start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    hub = start_hub(OFFLINE_AFTER_MISSED="60")  # the lease alone would keep it for 60 s
    agent = start_agent("phoenix", operator["agent_key"](), hub)
    job_id = trigger(hub, token, agent.name, "sleep.sh", params={"seconds": 120})
    wait_job(hub, token, job_id, ("running",))
    child = script_child_pid(hub, token, job_id)
    # Kill the agent and its reaper at once, as a crash of the whole machine slice
    # would: only the record in the state dir is left to find the script.
    reaper = subprocess.run(["pgrep", "-f", f"agent.reaper {agent.home / 'spool'}"],
                            capture_output=True, text=True).stdout.split()
    assert len(reaper) == 1, reaper
    os.kill(int(reaper[0]), signal.SIGKILL)
    os.kill(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait(5)
    time.sleep(0.5)
    assert pid_alive(child), "without the reaper the script's child is still running"
    restarted = time.monotonic()
    agent.proc.stop()
    agent.start()
    ended = wait_job(hub, token, job_id, timeout=10)
    assert ended["status"] == "failed" and ended["error"] == "agent_restarted", ended
    assert time.monotonic() - restarted < 10
    assert not pid_alive(child), "the restarted agent left the old script running"
    assert "killed process group" in agent.output(), agent.output()
    # The agent is usable again.
    assert wait_job(hub, token, trigger(hub, token, agent.name, "hello.sh"))["status"] == \
        "success"


def test_a_poll_whose_client_hung_up_leaves_the_job_in_the_queue(
        app: Flask, live_hub: LiveHub, operator: dict[str, Any]) -> None:
    token, key = operator["token"], operator["agent_key"]()
    manifest = {"scripts": [{"name": "hello.sh", "description": "hi"}], "flows": []}
    status, body = http("POST", live_hub.url + "/register-agent",
                        {"agent_name": "ghost", "manifest": manifest}, token=key)
    assert status == 200, body
    body = b'{"agent_name": "ghost", "max_jobs": 1, "wait": 5}'
    quitter = socket.create_connection(("127.0.0.1", live_hub.port))
    quitter.sendall(b"POST /agent/poll HTTP/1.1\r\nHost: hub\r\nContent-Type: "
                    b"application/json\r\nAuthorization: Bearer " + key.encode() +
                    b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.5)  # its poll now blocks in Redis, first in line
    quitter.close()
    answers: list[tuple[int, Any]] = []
    stayer = threading.Thread(target=lambda: answers.append(http(
        "POST", live_hub.url + "/agent/poll", {"agent_name": "ghost", "max_jobs": 1,
                                               "wait": 5}, token=key)))
    stayer.start()
    time.sleep(0.5)
    status, created = live_hub.call("POST", "/trigger-script", token,
                                    {"agent": "ghost", "run_script": "hello.sh"})
    assert status == 202, created
    sent = time.monotonic()
    stayer.join(10)
    assert answers and answers[0][0] == 200, answers
    assert [j["job_id"] for j in answers[0][1]["jobs"]] == [created["job_id"]]
    assert time.monotonic() - sent < 2, "the job waited for a lease to expire"
    with app.app_context():
        assert db.session.get(Job, created["job_id"]).dispatch_count == 1
