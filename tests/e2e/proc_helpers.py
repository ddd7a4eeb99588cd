"""Helpers for tests that run the hub's processes for real: spawn, wait, signal, probe.

Also holds the tiny task functions those processes import by name
(``tests.e2e.proc_helpers:record_run``), so subprocesses get ``PYTHONPATH``
set to the repository root by ``process_env``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.tasks import task

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUNS_KEY_ENV = "SCRIPTMESH_TEST_RUNS_KEY"


# -- functions the processes under test run ------------------------------------------------

def record_run() -> None:
    """Periodic task for scheduler tests: push this process's pid to a Redis list."""
    from orchestrator.extensions import redis_store

    redis_store.connection.rpush(os.environ[RUNS_KEY_ENV], os.getpid())


@task
def record_background(key: str, value: str) -> None:
    """RQ task for worker tests: proves it ran in an app context, with the app's Redis."""
    from flask import current_app

    from orchestrator.extensions import redis_store

    redis_store.connection.rpush(key, f"{value}:{current_app.name}:{os.getpid()}")


# -- processes -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` plus the repository on PYTHONPATH (for ``tests.*`` imports) and ``extra``."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Proc:
    """A real subprocess in its own process group, its output collected in a file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(list(argv), env=dict(env), cwd=str(REPO),
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        """Kill whatever is left of the group (cleanup after a failed test)."""
        if self.popen.poll() is None:
            group_kill(self.pid)
            self.popen.wait(10)
        group_kill(self.pid)
        self._log.close()


def group_kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """True while any live process of group ``pgid`` exists.

    Zombies do not count: an orphan reparented to an init that never reaps
    (common in containers) stays a zombie in its old group forever.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")


# -- HTTP ----------------------------------------------------------------------------------

def http(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or text). HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")
