"""The agent daemon as a real subprocess against a real HTTP hub stand-in."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.spool import Spool

from .conftest import API_KEY, MANIFEST, AgentProcess, StubHub, wait_for

pytestmark = pytest.mark.slow

Start = Callable[..., AgentProcess]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_registers_heartbeats_and_serves_probes(start_agent: Start, hub: StubHub):
    port = free_port()
    agent = start_agent(AGENT_PORT=str(port), AGENT_TAGS="prod,eu")
    agent.wait_line("agent test-agent registered")
    body = hub.bodies("/register-agent")[0]
    assert body["agent_name"] == "test-agent" and body["tags"] == ["prod", "eu"]
    assert body["workers"] == 2 and body["version"] == "0.1.0" and body["hostname"]
    assert {s["name"] for s in body["manifest"]["scripts"]} >= {"hello.sh", "backup.sh"}
    assert "path" not in json.dumps(body["manifest"]) and body["manifest_error"] is None
    wait_for(lambda: len(hub.bodies("/agent/heartbeat")) >= 2)
    assert hub.bodies("/agent/heartbeat")[0]["draining"] is False
    assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
    wait_for(lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200)
    assert API_KEY not in agent.log
    agent.signal()
    assert agent.wait() == 0


def test_runs_polled_job_and_reports_result(start_agent: Start, hub: StubHub):
    agent = start_agent()
    agent.wait_line("registered")
    hub.add_job("job_1", "hello.sh", params={"name": "agent"})
    wait_for(lambda: "job_1" in hub.results)
    result = hub.results["job_1"]
    assert result["status"] == "success" and "hello agent" in result["stdout"]
    assert "/agent/jobs/job_1/start" in hub.paths()
    agent.wait_line("job job_1 finished: status=success")
    agent.signal()
    assert agent.wait() == 0


def test_polls_only_for_free_workers(start_agent: Start, hub: StubHub):
    agent = start_agent(WORKERS="1")
    agent.wait_line("registered")
    hub.add_job("job_a", "sleep.sh", params={"seconds": "1.5"})
    agent.wait_line("job job_a started")
    polls_while_busy = len(hub.bodies("/agent/poll"))
    time.sleep(0.8)
    assert len(hub.bodies("/agent/poll")) <= polls_while_busy + 1
    wait_for(lambda: "job_a" in hub.results)
    assert all(body["max_jobs"] == 1 for body in hub.bodies("/agent/poll"))
    agent.signal()
    agent.wait()


def test_heartbeat_cancel_command_kills_job(start_agent: Start, hub: StubHub):
    agent = start_agent()
    agent.wait_line("registered")
    hub.add_job("job_c", "sleep.sh")
    agent.wait_line("job job_c started")
    wait_for(lambda: any("job_c" in b["running_jobs"] for b in hub.bodies("/agent/heartbeat")))
    hub.commands.append({"type": "cancel", "job_id": "job_c"})
    wait_for(lambda: "job_c" in hub.results)
    assert hub.results["job_c"]["status"] == "cancelled"
    agent.signal()
    assert agent.wait() == 0


def test_results_survive_hub_outage(start_agent: Start, hub: StubHub, agent_env):
    agent = start_agent()
    agent.wait_line("registered")
    hub.forced_status["/agent/jobs/job_o/result"] = 503
    hub.add_job("job_o", "hello.sh")
    agent.wait_line("job job_o finished")
    spool = Path(agent_env["SPOOL_DIR"])
    wait_for(lambda: (spool / "job_o.json").exists())
    hub.stop()
    agent.wait_line("hub unreachable")
    hub.forced_status.clear()
    hub.start()
    wait_for(lambda: "job_o" in hub.results, timeout=15)
    wait_for(lambda: not (spool / "job_o.json").exists())
    assert agent.proc.poll() is None, "the agent never crashes while the hub is away"
    agent.signal()
    assert agent.wait() == 0


def test_spool_from_previous_run_is_resent_at_start(start_agent: Start, hub: StubHub, agent_env):
    Spool(agent_env["SPOOL_DIR"]).save("job_old", {"status": "success", "exit_code": 0})
    agent = start_agent()
    wait_for(lambda: "job_old" in hub.results)
    assert hub.results["job_old"]["agent_name"] == "test-agent"
    agent.signal()
    agent.wait()


def test_401_on_heartbeat_stops_agent(start_agent: Start, hub: StubHub):
    agent = start_agent()
    agent.wait_line("registered")
    hub.forced_status["/agent/heartbeat"] = 401
    assert agent.wait() == 3
    assert "API key rejected by the hub on heartbeat" in agent.lines[-1]


def test_first_sigterm_drains_running_job(start_agent: Start, hub: StubHub):
    agent = start_agent()
    agent.wait_line("registered")
    hub.add_job("job_d", "sleep.sh", params={"seconds": "1"})
    agent.wait_line("job job_d started")
    agent.signal(signal.SIGTERM)
    assert agent.wait() == 0
    assert hub.results["job_d"]["status"] == "success"
    assert any(b["draining"] for b in hub.bodies("/agent/heartbeat"))


def test_second_signal_kills_running_jobs(start_agent: Start, hub: StubHub):
    agent = start_agent()
    agent.wait_line("registered")
    hub.add_job("job_k", "sleep.sh", params={"seconds": "30"})
    agent.wait_line("job job_k started")
    agent.signal(signal.SIGTERM)
    agent.wait_line("draining")
    agent.signal(signal.SIGINT)
    assert agent.wait(timeout=15) == 1
    assert hub.results["job_k"]["status"] == "cancelled"


def test_manifest_reload_reports_errors_and_keeps_last_good(
    start_agent: Start, hub: StubHub, tmp_path: Path
):
    manifest = tmp_path / "m.json"
    shutil.copy(MANIFEST, manifest)
    agent = start_agent(MANIFEST_PATH=str(manifest))
    agent.wait_line("registered")
    manifest.write_text("{broken")
    wait_for(lambda: any(b["manifest_error"] for b in hub.bodies("/agent/heartbeat")))
    last = hub.bodies("/agent/heartbeat")[-1]
    assert "hello.sh" in {s["name"] for s in last["manifest"]["scripts"]}
    hub.add_job("job_m", "hello.sh")
    wait_for(lambda: "job_m" in hub.results)
    assert hub.results["job_m"]["status"] == "success"
    manifest.write_text(json.dumps({"scripts": [{"name": "noop.sh", "path": "noop.sh"}]}))
    wait_for(
        lambda: (
            [s["name"] for s in hub.bodies("/agent/heartbeat")[-1]["manifest"]["scripts"]]
            == ["noop.sh"]
        )
    )
    hub.add_job("job_n", "hello.sh")
    wait_for(lambda: "job_n" in hub.results)
    assert hub.results["job_n"]["error"] == "script_not_in_manifest: hello.sh"
    agent.signal()
    agent.wait()
