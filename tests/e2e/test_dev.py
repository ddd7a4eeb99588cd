"""``scriptmesh dev`` as a user runs it: one command, a working hub and agent, a clean Ctrl-C.

These run the embedded defaults (SQLite and Redis in a temporary data dir),
as ``make run`` does, whatever DATABASE_URL/REDIS_URL the suite itself uses.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.e2e.proc_helpers import (
    BIN,
    Proc,
    free_port,
    group_alive,
    http,
    pid_alive,
    process_env,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

READY_LINE = "Press Ctrl-C to stop."
START_TIMEOUT = 90


def start_dev(data_dir: Path, log: Path, *extra: str) -> tuple[Proc, int]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SCRIPTMESH_ENV", "SCRIPTMESH_DATA_DIR")}
    port = free_port()
    proc = Proc([str(BIN / "scriptmesh"), "dev", "--port", str(port), "--data-dir",
                 str(data_dir), *extra], process_env(env, AGENT_PORT="0"), log)
    return proc, port


def wait_ready(proc: Proc) -> dict[str, str]:
    """Wait for the banner; return what it printed (url, email, password, token)."""
    def banner_or_exit() -> str | None:
        if proc.popen.poll() is not None:
            raise AssertionError(f"scriptmesh dev exited early:\n{proc.output()}")
        return proc.output() if READY_LINE in proc.output() else None

    text = wait_for(banner_or_exit, START_TIMEOUT, what="the dev banner")
    found = {
        "url": re.search(r"^  URL:\s+(\S+)$", text, re.M),
        "docs": re.search(r"^  API docs:\s+(\S+)$", text, re.M),
        "email": re.search(r"^  Email:\s+(\S+)$", text, re.M),
        "password": re.search(r"^  Password:\s+(\S+)$", text, re.M),
        "token": re.search(r"^  export TOKEN=(sm_live_\S+)$", text, re.M),
    }
    missing = [name for name, match in found.items() if match is None]
    assert not missing, f"banner lacks {missing}:\n{text}"
    return {name: match.group(1) for name, match in found.items()}


def started_pids(output: str) -> dict[str, int]:
    pids = {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\[dev\] started (\w+) \(pid (\d+)\)$", output, re.M)}
    redis_pid = re.search(r"^\[dev\] started embedded Redis \S+ \(pid (\d+)\)$", output, re.M)
    if redis_pid:
        pids["redis"] = int(redis_pid.group(1))
    return pids


def stop_with_sigint(proc: Proc) -> int:
    proc.send(signal.SIGINT)
    return proc.wait(60)


def agent_status(url: str, token: str) -> str | None:
    status, body = http("GET", f"{url}/agents", token=token)
    if status != 200 or not isinstance(body, dict):
        return None
    return (body.get("local-agent") or {}).get("status")


def test_dev_runs_the_stack_and_sigint_stops_every_process(tmp_path: Path) -> None:
    proc, port = start_dev(tmp_path / "data", tmp_path / "dev.log")
    try:
        banner = wait_ready(proc)
        url = banner["url"]
        assert url == f"http://127.0.0.1:{port}"
        assert banner["docs"] == f"{url}/docs"

        assert http("GET", f"{url}/health")[0] == 200
        status, _ = http("GET", banner["docs"])
        assert status == 200

        status, body = http("POST", f"{url}/auth/login",
                            {"email": banner["email"], "password": banner["password"]})
        assert status == 200, body
        assert body["token_type"] == "bearer" and body["access_token"]

        wait_for(lambda: agent_status(url, banner["token"]) == "online", 45,
                 what="local-agent online in GET /agents")

        pids = started_pids(proc.output())
        assert {"hub", "worker", "scheduler", "agent", "redis"} <= set(pids), pids
        assert all(pid_alive(pid) for pid in pids.values())

        assert stop_with_sigint(proc) == 0, proc.output()
        for name, pid in pids.items():
            gone = (not pid_alive(pid)) if name == "redis" else (not group_alive(pid))
            assert gone, f"{name} (pid {pid}) survived Ctrl-C"
        assert "exited unexpectedly" not in proc.output()
    finally:
        proc.stop()


def test_second_start_reuses_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, _ = start_dev(data_dir, tmp_path / "dev1.log", "--no-agent")
    try:
        banner = wait_ready(first)
        status, session = http("POST", f"{banner['url']}/auth/login",
                               {"email": banner["email"], "password": banner["password"]})
        assert status == 200, session
        status, created = http("POST", f"{banner['url']}/auth/api-keys",
                               {"name": "kept across restarts", "expires_days": 90},
                               token=session["access_token"])
        assert status in (200, 201), created
        new_key = created["key"]
        assert stop_with_sigint(first) == 0, first.output()
    finally:
        first.stop()

    second, _ = start_dev(data_dir, tmp_path / "dev2.log", "--no-agent")
    try:
        again = wait_ready(second)
        assert (again["email"], again["password"], again["token"]) == (
            banner["email"], banner["password"], banner["token"]), "credentials not reused"
        assert "Running upgrade" not in second.output(), "the schema was built again"
        status, body = http("GET", f"{again['url']}/agents", token=new_key)
        assert status == 200, f"the key made in the first run no longer works: {body}"
        assert stop_with_sigint(second) == 0, second.output()
    finally:
        second.stop()


def test_a_child_that_dies_is_reported_and_stops_the_rest(tmp_path: Path) -> None:
    proc, _ = start_dev(tmp_path / "data", tmp_path / "dev.log", "--no-agent")
    try:
        wait_ready(proc)
        pids = started_pids(proc.output())
        os.killpg(pids["worker"], signal.SIGKILL)

        assert proc.wait(60) == 1, proc.output()
        assert "error: worker exited unexpectedly" in proc.output()
        for name, pid in pids.items():
            gone = (not pid_alive(pid)) if name == "redis" else (not group_alive(pid))
            assert gone, f"{name} (pid {pid}) survived"
    finally:
        proc.stop()
