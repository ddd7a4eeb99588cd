"""Live processes for end-to-end tests: real hubs (gunicorn + gevent), real agents, upkeep.

A hub started here shares the test session's database and Redis (``hub_env``),
so tests also request ``app`` (which empties both around each test) and create
users and keys with the ordinary fixtures. Timings are shrunk so leases,
offline detection and long-polls play out in seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from orchestrator.services.maintenance import run_maintenance
from tests.e2e.proc_helpers import BIN, REPO, Proc, free_port, http, process_env, wait_for

#: Hub settings for e2e runs: short polls and leases, 1 s heartbeats.
HUB_SETTINGS = {"POLL_WAIT": "5", "LEASE_SECONDS": "3", "HEARTBEAT_INTERVAL": "1",
                "OFFLINE_AFTER_MISSED": "3", "WEB_CONCURRENCY": "1", "LOG_LEVEL": "warning"}
AGENT_SETTINGS = {"HEARTBEAT_INTERVAL": "1", "WORKERS": "2", "AGENT_PORT": "0",
                  "BACKOFF_BASE": "0.3", "BACKOFF_CAP": "1", "KILL_GRACE": "1",
                  "POLL_WAIT": "5"}
#: The hub's settings and secrets: an agent process gets none of them.
HUB_ONLY_ENV = frozenset({"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET",
                          "ENCRYPTION_KEY", "SCRIPTMESH_DATA_DIR", "SCRIPTMESH_ENV"})
HUB_START_TIMEOUT = 60
AGENT_START_TIMEOUT = 30
MAINTENANCE_EVERY = 0.5


class LiveHub:
    """One hub process (``gunicorn -k gevent -w 1 wsgi:app``) on a fixed port."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "hub",
                 graceful_timeout: str | None = "2") -> None:
        self.graceful_timeout = graceful_timeout  # None: gunicorn_conf's own (30 s)
        self.port = free_port()
        self.env = process_env(env, **HUB_SETTINGS, HOST="127.0.0.1", PORT=str(self.port))
        self.log_dir = log_dir
        self.name = name
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveHub:
        self.starts += 1
        argv = [str(BIN / "python"), "-m", "gunicorn", "-c", "orchestrator/gunicorn_conf.py",
                *(["--graceful-timeout", self.graceful_timeout] if self.graceful_timeout else []),
                "wsgi:app"]
        self.proc = Proc(argv, self.env, self.log_dir / f"{self.name}-{self.starts}.log")
        wait_for(self._healthy, HUB_START_TIMEOUT, what=f"{self.name} /health")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.proc.output()}")
        try:
            status, _ = http("GET", self.url + "/health", timeout=2)
        except OSError:
            return False
        return status == 200

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.popen.poll() is None:
            self.proc.send(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        self.proc.stop()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def call(self, method: str, path: str, token: str, body: Any = None,
             timeout: float = 30) -> tuple[int, Any]:
        return http(method, self.url + path, body, token=token, timeout=timeout)


@dataclass
class AgentProc:
    """A real agent process (``python -m agent.cli start``) with its own scripts and manifest."""

    name: str
    key: str
    hub: LiveHub
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: Proc | None = None
    starts: int = 0

    @property
    def manifest_path(self) -> Path:
        return self.home / "script_manifest.json"

    @property
    def scripts_dir(self) -> Path:
        return self.home / "scripts"

    def prepare(self) -> None:
        shutil.copytree(REPO / "scripts", self.scripts_dir)
        shutil.copy(REPO / "manifests" / "script_manifest.json", self.manifest_path)

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        temporary = self.manifest_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(manifest))
        temporary.replace(self.manifest_path)  # atomic: the agent never reads half a file

    def start(self, wait: bool = True) -> AgentProc:
        self.starts += 1
        env = process_env(
            {k: v for k, v in os.environ.items() if k not in HUB_ONLY_ENV},
            **{**AGENT_SETTINGS, "AGENT_NAME": self.name, "ORCHESTRATOR_URL": self.hub.url,
               "API_KEY": self.key, "SCRIPTS_DIR": str(self.scripts_dir),
               "MANIFEST_PATH": str(self.manifest_path),
               "SPOOL_DIR": str(self.home / "spool"), "AGENT_TAGS": "e2e", **self.extra_env})
        argv = [str(BIN / "python"), "-m", "agent.cli", "start"]
        self.proc = Proc(argv, env, self.home / f"agent-{self.starts}.log")
        if wait:
            wait_for(self.registered, AGENT_START_TIMEOUT, what=f"agent {self.name} registered")
        return self

    def registered(self) -> bool:
        assert self.proc is not None
        output = self.proc.output()
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"agent {self.name} exited:\n{output}")
        return f"agent {self.name} registered" in output

    def output(self) -> str:
        return self.proc.output() if self.proc else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        code = None
        if self.proc.popen.poll() is None:
            self.proc.send(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = self.proc.wait(timeout)
        self.proc.stop()
        return code


class Maintenance:
    """What ``scriptmesh scheduler`` does for leases: ``run_maintenance()`` every 0.5 s."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)

    def _loop(self) -> None:
        while not self.stopping.wait(MAINTENANCE_EVERY):
            if self.paused.is_set():
                continue
            try:
                with self.app.app_context():
                    run_maintenance()
            except Exception as exc:  # noqa: BLE001 - reported by the fixture's teardown
                self.errors.append(exc)

    def __enter__(self) -> Maintenance:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


@pytest.fixture
def maintenance(app: Flask) -> Iterator[Maintenance]:
    """Upkeep for the test's hubs, run in this process against the shared database."""
    with Maintenance(app) as loop:
        yield loop
    assert not loop.errors, f"maintenance failed: {loop.errors!r}"


@pytest.fixture
def start_hub(app: Flask, hub_env: dict[str, str], tmp_path: Path) -> Iterator[
        Callable[..., LiveHub]]:
    """Start hubs on demand: ``start_hub(name="hub", **settings)``; all stopped at the end.

    ``graceful_timeout=None`` keeps gunicorn_conf's (the production) value.
    """
    hubs: list[LiveHub] = []

    def start(name: str = "hub", graceful_timeout: str | None = "2",
              **settings: str) -> LiveHub:
        hub = LiveHub({**hub_env, **settings}, tmp_path, name, graceful_timeout)
        hub.env.update(settings)
        hubs.append(hub)
        return hub.start()

    yield start
    for hub in hubs:
        hub.stop(signal.SIGQUIT)  # quick shutdown: no need to let long-polls finish


@pytest.fixture
def live_hub(start_hub: Callable[..., LiveHub], maintenance: Maintenance) -> LiveHub:
    """One running hub on the test's database and Redis, with maintenance running."""
    return start_hub()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProc]]:
    """``start_agent(name, key, hub, wait=True, setup=None, **env)``: a real agent with its
    own scripts; ``setup(agent)`` may change its scripts and manifest before it starts."""
    agents: list[AgentProc] = []

    def start(name: str, key: str, hub: LiveHub, wait: bool = True,
              setup: Callable[[AgentProc], None] | None = None, **env: str) -> AgentProc:
        home = tmp_path / f"agent-{name}-{len(agents)}"
        home.mkdir()
        agent = AgentProc(name, key, hub, home, dict(env))
        agent.prepare()
        if setup is not None:
            setup(agent)
        agents.append(agent)
        return agent.start(wait)

    yield start
    for agent in agents:
        agent.stop(signal.SIGKILL, timeout=5)


@pytest.fixture
def operator(make_user: Callable[..., dict[str, Any]],
             make_api_key: Callable[..., str]) -> dict[str, Any]:
    """A user with an operator key (``token``) and a factory of agent keys (``agent_key()``)."""
    user = make_user()
    return {**user, "token": make_api_key(user["user_id"], scope="operator"),
            "agent_key": lambda: make_api_key(user["user_id"], scope="agent")}
