"""``scriptmesh dev`` owns its embedded Redis: CLI commands beside it start none, stops leave none.

As the README says: ``scriptmesh dev --data-dir D --port P`` in one terminal,
``SCRIPTMESH_DATA_DIR=D scriptmesh ...`` in another while it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.proc_helpers import BIN, group_alive, http, pid_alive, wait_for
from tests.e2e.test_dev import agent_status, start_dev, started_pids, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

JOBS = 50
#: CLI commands run after every this many jobs.
CLI_EVERY = 10
STOP_WITHIN = 3.0


def redis_servers(data_dir: Path) -> list[str]:
    """The pids of redis-servers serving ``data_dir``'s socket."""
    found = subprocess.run(["pgrep", "-f", f"redis-server.*{data_dir.resolve()}/redis.sock"],
                           capture_output=True, text=True)
    return found.stdout.split()


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``scriptmesh`` command run the way a user runs it beside the dev stack."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SCRIPTMESH_ENV")}
    env["SCRIPTMESH_DATA_DIR"] = str(data_dir)
    return subprocess.run([str(BIN / "scriptmesh"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def run_job(url: str, token: str) -> float:
    """Run noop.sh on the local agent (a synchronous trigger); return how long it took."""
    started = time.monotonic()
    status, body = http("POST", f"{url}/trigger-script",
                        {"agent": "local-agent", "run_script": "noop.sh", "async_exec": False},
                        token=token, timeout=30)
    took = time.monotonic() - started
    assert status == 200 and body["status"] == "success", (status, body)
    return took


def admin_commands(data_dir: Path, n: int) -> None:
    email = f"user{n}@example.com"
    for args in (("--help",),
                 ("users", "create", "--email", email, "--password", "Correct-horse-9!",
                  "--tenant", f"t{n}"),
                 ("api-keys", "create", "--email", email, "--name", f"k{n}",
                  "--scope", "agent")):
        done = cli(data_dir, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert len(redis_servers(data_dir)) == 1, f"after scriptmesh {args[0]}"


@pytest.mark.timeout(420)
def test_fifty_jobs_with_cli_commands_between_one_redis_then_a_fast_clean_stop(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, _ = start_dev(data_dir, tmp_path / "dev.log")
    try:
        banner = wait_ready(proc)
        url, token = banner["url"], banner["token"]
        wait_for(lambda: agent_status(url, token) == "online", 45, what="local-agent online")
        assert len(redis_servers(data_dir)) == 1
        durations = []
        for n in range(JOBS):
            if n % CLI_EVERY == 0:
                admin_commands(data_dir, n)
            durations.append(run_job(url, token))
        slow = [(n, round(d, 2)) for n, d in enumerate(durations) if d >= 1.0]
        assert len(redis_servers(data_dir)) == 1
        assert (data_dir / "redis.sock").exists(), "a CLI command removed the socket"

        pids = started_pids(proc.output())
        started = time.monotonic()
        proc.send(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.output()
        took = time.monotonic() - started
        assert took <= STOP_WITHIN, f"scriptmesh dev took {took:.1f}s to stop"
        assert redis_servers(data_dir) == [], "a redis-server outlived scriptmesh dev"
        for name, pid in pids.items():
            gone = (not pid_alive(pid)) if name == "redis" else (not group_alive(pid))
            assert gone, f"{name} (pid {pid}) survived"
        output = proc.output()
        assert output.index("[dev] stopping") < output.index("agent local-agent stopped") \
            < output.index("embedded Redis stopped"), "the agent stops first, Redis last"
    finally:
        proc.stop()
    assert redis_servers(data_dir) == []
    assert not slow, f"jobs slower than 1 s: {slow}"


def test_commands_without_a_running_stack_start_no_redis(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert cli(data_dir, "--help").returncode == 0
    assert cli(data_dir, "db", "upgrade").returncode == 0
    done = cli(data_dir, "users", "create", "--email", "solo@example.com", "--password",
               "Correct-horse-9!", "--tenant", "solo")
    assert done.returncode == 0, done.stderr
    assert redis_servers(data_dir) == [] and not (data_dir / "redis.sock").exists()
    worker = cli(data_dir, "worker", "--burst")
    assert worker.returncode != 0
    assert "scriptmesh dev --data-dir" in worker.stdout + worker.stderr, worker.stderr


def test_a_second_dev_on_the_same_data_dir_refuses(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, _ = start_dev(data_dir, tmp_path / "dev1.log", "--no-agent")
    try:
        wait_ready(first)
        second, _ = start_dev(data_dir, tmp_path / "dev2.log", "--no-agent")
        try:
            assert second.wait(60) == 2, second.output()
            assert "already serves data dir" in second.output()
        finally:
            second.stop()
        assert len(redis_servers(data_dir)) == 1
        assert http("GET", wait_ready(first)["url"] + "/health")[0] == 200
        first.send(signal.SIGINT)
        assert first.wait(60) == 0, first.output()
    finally:
        first.stop()
    assert redis_servers(data_dir) == []


def test_a_killed_dev_supervisor_leaves_no_process_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, _ = start_dev(data_dir, tmp_path / "dev.log")
    try:
        banner = wait_ready(proc)
        wait_for(lambda: agent_status(banner["url"], banner["token"]) == "online", 45,
                 what="local-agent online")
        pids = started_pids(proc.output())
        os.kill(proc.pid, signal.SIGKILL)  # the supervisor only: children are in own groups
        proc.wait(10)
        for name, pid in pids.items():
            wait_for(lambda pid=pid: not group_alive(pid), 20,
                     what=f"{name} (pid {pid}) gone after its supervisor died")
        assert redis_servers(data_dir) == []
    finally:
        proc.stop()
        for pid in started_pids(proc.output()).values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
