"""Jobs end to end: a real hub (gunicorn + gevent), real agents, real scripts, real signals."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import pid_alive, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FINISHED = ("success", "failed", "timeout", "cancelled", "expired")


def trigger(hub: LiveHub, token: str, agent: str, script: str, **extra: Any) -> str:
    status, body = hub.call("POST", "/trigger-script", token,
                            {"agent": agent, "run_script": script, **extra})
    assert status == 202, body
    return body["job_id"]


def job(hub: LiveHub, token: str, job_id: str) -> dict[str, Any]:
    status, body = hub.call("GET", f"/jobs/{job_id}", token)
    assert status == 200, body
    return body


def wait_job(hub: LiveHub, token: str, job_id: str, statuses: tuple[str, ...] = FINISHED,
             timeout: float = 30) -> dict[str, Any]:
    return wait_for(lambda: (found := job(hub, token, job_id))["status"] in statuses and found,
                    timeout, what=f"job {job_id} in {statuses}")


@pytest.fixture
def agent(live_hub: LiveHub, operator: dict[str, Any],
          start_agent: Callable[..., AgentProc]) -> AgentProc:
    return start_agent("e2e-1", operator["agent_key"](), live_hub)


def test_trigger_runs_the_script_and_records_stdout(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    job_id = trigger(live_hub, token, agent.name, "hello.sh", params={"name": "mesh"})
    done = wait_job(live_hub, token, job_id)
    assert done["status"] == "success", done
    assert done["exit_code"] == 0 and done["error"] is None
    assert "hello mesh" in done["stdout"] and f"job_id={job_id}" in done["stdout"]
    assert done["duration_ms"] >= 0 and done["completed_at"].endswith("Z")
    status, fleet = live_hub.call("GET", "/agents", token)
    assert fleet[agent.name]["status"] == "online"
    assert "hello.sh" in fleet[agent.name]["scripts"]


def test_non_zero_exit_is_failed_with_stderr(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    done = wait_job(live_hub, token, trigger(live_hub, token, agent.name, "fail.sh"))
    assert done["status"] == "failed" and done["exit_code"] == 3
    assert "something went wrong" in done["stderr"] and "about to fail" in done["stdout"]


def test_timeout_kills_the_whole_process_tree(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    job_id = trigger(live_hub, token, agent.name, "sleep.sh", params={"seconds": 60},
                     timeout=2)
    done = wait_job(live_hub, token, job_id, timeout=30)
    assert done["status"] == "timeout", done
    child = int(re.search(r"child_pid=(\d+)", done["stdout"]).group(1))
    wait_for(lambda: not pid_alive(child), 10, what="the script's child to be gone")


def test_params_are_environment_variables_never_shell(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path) -> None:
    token = operator["token"]
    marker = tmp_path / "pwned"
    payload = f"$(touch {marker}); `touch {marker}`"
    job_id = trigger(live_hub, token, agent.name, "hello.sh", params={"name": payload})
    done = wait_job(live_hub, token, job_id)
    assert done["status"] == "success", done
    assert f"hello {payload}" in done["stdout"]
    assert not marker.exists(), "a param value must never be run by a shell"


def test_declared_params_reach_backup_sh_and_tool_variables_never_do(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path) -> None:
    """The seed's backup.sh reads ${target}; the probe's TAR_OPTIONS exploit is a 422."""
    token = operator["token"]
    marker, out = tmp_path / "pwned", tmp_path / "archives"
    evil = f"--checkpoint=1 --checkpoint-action=exec=sh -c 'touch {marker}'"
    status, body = live_hub.call("POST", "/trigger-script", token, {
        "agent": agent.name, "run_script": "backup.sh",
        "params": {"target": str(out), "TAR_OPTIONS": evil}})
    assert status == 422 and body["error"]["code"] == "invalid_params", body
    assert body["error"]["details"] == {"script": "backup.sh", "param": "TAR_OPTIONS",
                                        "agent": agent.name}
    status, scripts = live_hub.call("GET", f"/get-scripts?agent={agent.name}", token)
    backup = next(s for s in scripts["scripts"] if s["name"] == "backup.sh")
    assert {p["name"] for p in backup["params"]} == {"target", "source", "compress", "level"}
    done = wait_job(live_hub, token, trigger(live_hub, token, agent.name, "backup.sh",
                                             params={"target": str(out), "level": 9}))
    assert done["status"] == "success", done
    assert "(gzip -9)" in done["stdout"] and list(out.glob("backup_*.tar.gz"))
    assert not marker.exists()


def test_undeclared_params_need_the_agent_setting_and_arrive_prefixed(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    loose = start_agent("e2e-loose", operator["agent_key"](), live_hub,
                        ALLOW_UNDECLARED_PARAMS="true")
    done = wait_job(live_hub, token, trigger(live_hub, token, loose.name, "hello.sh",
                                             params={"retries": 3, "dry_run": True}))
    assert done["status"] == "success", done
    assert "PARAM_retries=3" in done["stdout"] and "PARAM_dry_run=true" in done["stdout"]
    status, body = live_hub.call("POST", "/trigger-script", token, {
        "agent": loose.name, "run_script": "hello.sh", "params": {"LD_PRELOAD": "/x.so"}})
    assert status == 422 and body["error"]["details"]["param"] == "LD_PRELOAD", body


def test_unlisted_scripts_are_refused_by_hub_and_agent(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    status, body = live_hub.call("POST", "/trigger-script", token,
                                 {"agent": agent.name, "run_script": "rm-rf.sh"})
    assert status == 403 and body["error"]["code"] == "script_not_in_manifest"
    # Bypass the hub's check: queue hello.sh while the agent is down, then drop it from
    # the manifest on disk. The hub still lists it; the agent must refuse it.
    agent.stop()
    job_id = trigger(live_hub, token, agent.name, "hello.sh")
    manifest = agent.manifest()
    manifest["scripts"] = [s for s in manifest["scripts"] if s["name"] != "hello.sh"]
    agent.write_manifest(manifest)
    agent.start()
    done = wait_job(live_hub, token, job_id)
    assert done["status"] == "failed", done
    assert "script_not_in_manifest" in done["error"]
    assert done["stdout"] == "" and done["exit_code"] is None


def test_manifest_reload_without_restart(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    script = agent.scripts_dir / "late.sh"
    script.write_text("#!/usr/bin/env bash\necho late arrival\n")
    script.chmod(0o755)
    status, _ = live_hub.call("POST", "/trigger-script", token,
                              {"agent": agent.name, "run_script": "late.sh"})
    assert status == 403
    manifest = agent.manifest()
    manifest["scripts"].append({"name": "late.sh", "path": "late.sh", "description": "new"})
    agent.write_manifest(manifest)

    def listed() -> bool:
        _, scripts = live_hub.call("GET", f"/get-scripts?agent={agent.name}", token)
        return "late.sh" in [s["name"] for s in scripts["scripts"]]

    wait_for(listed, 15, what="the new script to be listed")
    done = wait_job(live_hub, token, trigger(live_hub, token, agent.name, "late.sh"))
    assert done["status"] == "success" and "late arrival" in done["stdout"]


def test_partial_stdout_is_visible_while_running_and_cancel_kills_it(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    job_id = trigger(live_hub, token, agent.name, "sleep.sh", params={"seconds": 60})
    running = wait_for(lambda: "sleeping 60s" in (found := job(live_hub, token, job_id))[
        "stdout"] and found, 20, what="partial stdout")
    assert running["status"] == "running" and running["completed_at"] is None
    child = int(re.search(r"child_pid=(\d+)", running["stdout"]).group(1))
    assert pid_alive(child)
    status, body = live_hub.call("POST", f"/jobs/{job_id}/cancel", token)
    assert status == 202 and body["status"] == "running"
    done = wait_job(live_hub, token, job_id, timeout=20)
    assert done["status"] == "cancelled", done
    wait_for(lambda: not pid_alive(child), 10, what="the script's child to be killed")


def test_cancel_a_pending_job(live_hub: LiveHub, operator: dict[str, Any],
                              start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    busy = start_agent("solo", operator["agent_key"](), live_hub, WORKERS="1")
    blocker = trigger(live_hub, token, busy.name, "sleep.sh", params={"seconds": 60})
    wait_job(live_hub, token, blocker, ("running",))
    waiting = trigger(live_hub, token, busy.name, "hello.sh")
    status, body = live_hub.call("POST", f"/jobs/{waiting}/cancel", token)
    assert status == 200 and body["status"] == "cancelled"
    live_hub.call("POST", f"/jobs/{blocker}/cancel", token)
    assert wait_job(live_hub, token, blocker)["status"] == "cancelled"
    after = trigger(live_hub, token, busy.name, "hello.sh")
    assert wait_job(live_hub, token, after)["status"] == "success"
    assert job(live_hub, token, waiting)["started_at"] is None, "never ran"


def test_idempotency_key_runs_once(live_hub: LiveHub, operator: dict[str, Any],
                                   agent: AgentProc) -> None:
    token = operator["token"]
    body = {"agent": agent.name, "run_script": "hello.sh", "idempotency_key": "nightly-1"}
    first_status, first = live_hub.call("POST", "/trigger-script", token, body)
    again_status, again = live_hub.call("POST", "/trigger-script", token, body)
    assert (first_status, again_status) == (202, 200)
    assert again["job_id"] == first["job_id"]
    assert wait_job(live_hub, token, first["job_id"])["status"] == "success"
    _, page = live_hub.call("GET", f"/jobs?agent={agent.name}", token)
    assert [j["job_id"] for j in page["jobs"]] == [first["job_id"]]


def test_synchronous_trigger_returns_the_result(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    status, body = live_hub.call("POST", "/trigger-script", operator["token"],
                                 {"agent": agent.name, "run_script": "hello.sh",
                                  "async_exec": False, "timeout": 30})
    assert status == 200 and body["status"] == "success" and "hello world" in body["stdout"]
