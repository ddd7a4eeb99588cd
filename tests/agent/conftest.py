"""Fixtures for agent tests: a tiny real HTTP hub stand-in, script dirs, agent subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO / "scripts"
MANIFEST = REPO / "manifests" / "script_manifest.json"
API_KEY = "sm_live_test_secret_key_123"
JOB_PATH = re.compile(r"^/agent/jobs/([^/]+)/(start|output|result)$")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class StubHub:
    """A real HTTP server speaking the hub side of ``agent/protocol.py``, recording requests.

    Behaviour is data: queue jobs with :meth:`add_job`, queue commands, force a status per
    path prefix with ``forced_status``, stop and restart on the same port to simulate outages.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.jobs: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.cancel_on_output: set[str] = set()
        self.results: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, str]] = {}
        self.forced_status: dict[str, int] = {}
        self.register_answer: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = hub.handle(self.path, body, dict(self.headers))
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the agent went away mid long-poll: fine

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add_job(self, job_id: str, script: str, **extra: Any) -> None:
        job = {
            "job_id": job_id,
            "kind": "script",
            "script": script,
            "params": {},
            "timeout": 30,
            "lease_expires_at": "2999-01-01T00:00:00Z",
            **extra,
        }
        with self.lock:
            self.jobs.append(job)

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _, _ in self.requests]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body, _ in self.requests if p == path]

    def handle(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((path, body, headers))
            for prefix, status in self.forced_status.items():
                if path.startswith(prefix):
                    return status, {"error": {"code": "forced", "message": "forced", "details": {}}}
        if path == "/register-agent":
            return 200, {
                "status": "ok",
                "agent": body.get("agent_name"),
                "agent_id": "agt_1",
                **self.register_answer,
            }
        if path == "/agent/heartbeat":
            with self.lock:
                commands, self.commands = self.commands, []
            return 200, {"status": "ok", "commands": commands}
        if path == "/agent/poll":
            return 200, {"jobs": self._take_jobs(body)}
        match = JOB_PATH.match(path)
        if match:
            return self._job(match.group(1), match.group(2), body)
        return 404, {"error": {"code": "not_found", "message": path, "details": {}}}

    def _take_jobs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + min(float(body.get("wait", 0)), 0.3)
        while True:
            with self.lock:
                if self.jobs or time.monotonic() >= deadline:
                    taken = self.jobs[: int(body.get("max_jobs", 1))]
                    del self.jobs[: len(taken)]
                    return taken
            time.sleep(0.02)

    def _job(self, job_id: str, action: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            if action == "start":
                return 200, {"status": "running"}
            if action == "output":
                seen = self.outputs.setdefault(job_id, {"stdout": "", "stderr": ""})
                for stream in ("stdout", "stderr"):
                    part = body.get(stream) or {}
                    if part.get("offset") == len(seen[stream]):
                        seen[stream] += part.get("data", "")
                return 200, {"cancel": job_id in self.cancel_on_output}
            self.results.setdefault(job_id, body)
            return 200, {"status": "ok"}


@pytest.fixture
def hub() -> Iterator[StubHub]:
    server = StubHub()
    yield server
    server.stop()


class AgentProcess:
    """``python -m agent.cli start`` as a real subprocess with its stderr collected."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, fragment: str, timeout: float = 15.0) -> str:
        return wait_for(lambda: next((ln for ln in self.lines if fragment in ln), None), timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def agent_env(tmp_path: Path, hub: StubHub) -> dict[str, str]:
    """Environment for an agent subprocess talking to ``hub`` with short intervals."""
    env = {k: v for k, v in os.environ.items() if k not in ("HTTP_PROXY", "HTTPS_PROXY")}
    env.update(
        {
            "AGENT_NAME": "test-agent",
            "ORCHESTRATOR_URL": hub.url,
            "API_KEY": API_KEY,
            "HEARTBEAT_INTERVAL": "0.3",
            "POLL_WAIT": "0.3",
            "AGENT_PORT": "0",
            "SCRIPTS_DIR": str(SCRIPTS_DIR),
            "MANIFEST_PATH": str(MANIFEST),
            "SPOOL_DIR": str(tmp_path / "spool"),
            "BACKOFF_BASE": "0.1",
            "BACKOFF_CAP": "0.5",
            "DRAIN_TIMEOUT": "10",
            "KILL_GRACE": "1",
            "WORKERS": "2",
            "NO_PROXY": "*",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@pytest.fixture
def start_agent(agent_env: dict[str, str]) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(*args: str, **overrides: str) -> AgentProcess:
        agent = AgentProcess({**agent_env, **overrides}, *(args or ("start",)))
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
