"""The production shape on one machine: HAProxy -> 3 hubs, 2 workers, 2 schedulers, Redis HA.

Every process is started the way the README's Production section says
(gunicorn with ``orchestrator/gunicorn_conf.py``, ``scriptmesh worker``,
``scriptmesh scheduler``), on the test's PostgreSQL database and a Redis
master + replica found through Sentinel (``REDIS_SENTINELS``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import LiveHub
from tests.e2e.proc_helpers import BIN, Proc, pid_alive, process_env, wait_for
from tests.scale.services import HAProxy, RedisHA

LEADER_KEY = "scriptmesh:scheduler:leader"


class Cluster:
    """Start with ``start()``; ``stop()`` ends every process, whatever state it is in."""

    def __init__(self, directory: Path, hub_env: dict[str, str], settings: dict[str, str],
                 hubs: int = 3, workers: int = 2, schedulers: int = 2) -> None:
        self.directory = directory
        self.redis = RedisHA(directory)
        self.settings = settings
        self.base_env = hub_env
        self.hubs: list[LiveHub] = []
        self.hub_count, self.worker_count, self.scheduler_count = hubs, workers, schedulers
        self.workers: list[Proc] = []
        self.schedulers: list[Proc] = []
        self.haproxy: HAProxy | None = None
        self.fleet: Proc | None = None
        self.fleet_out = directory / "fleet.json"

    def env(self) -> dict[str, str]:
        return {**self.base_env, **self.redis.env(), **self.settings}

    def start(self) -> Cluster:
        self.redis.start()
        for index in range(self.hub_count):
            hub = LiveHub(self.env(), self.directory, f"hub-{index}")
            hub.env.update(self.settings)  # LiveHub's short e2e timings give way to ours
            self.hubs.append(hub.start())
        for index in range(self.worker_count):
            self.workers.append(self._role("worker", index))
        for index in range(self.scheduler_count):
            self.schedulers.append(self._role("scheduler", index))
        self.haproxy = HAProxy(self.directory, [hub.port for hub in self.hubs]).start()
        wait_for(self.leader_pid, 30, what="a scheduler leads")
        return self

    def _role(self, role: str, index: int) -> Proc:
        return Proc([str(BIN / "scriptmesh"), role], process_env(self.env()),
                    self.directory / f"{role}-{index}.log")

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    # -- failures --------------------------------------------------------------------------

    def kill_hub(self, index: int) -> None:
        """``kill -9`` one hub replica (its whole gunicorn process group)."""
        hub = self.hubs[index]
        assert hub.proc is not None
        hub.proc.send(signal.SIGKILL)
        hub.proc.wait(10)
        hub.stop()

    def restart_hub(self, index: int) -> None:
        self.hubs[index].start()

    def leader_pid(self) -> int | None:
        """The pid in the leader key (``host:pid:random``), if a scheduler holds it."""
        port = self.redis.sentinels.master_port()
        if port is None:
            return None
        import redis

        try:
            value = redis.Redis(port=port, socket_timeout=2).get(LEADER_KEY)
        except redis.RedisError:
            return None
        return int(value.split(b":")[1]) if value else None

    def kill_leader_scheduler(self) -> int:
        """``kill -9`` the scheduler that leads; return its pid."""
        pid = self.leader_pid()
        victim = next(p for p in self.schedulers if p.pid == pid)
        victim.send(signal.SIGKILL)
        victim.wait(10)
        return victim.pid

    # -- the simulated fleet ---------------------------------------------------------------

    def start_fleet(self, key: str, count: int) -> None:
        argv = [str(BIN / "python"), "-m", "tests.scale.fleet", self.url, key, str(count),
                str(self.fleet_out)]
        env = process_env({k: v for k, v in self.base_env.items()
                           if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")},
                          SCALE_POLL_WAIT=self.settings["POLL_WAIT"],
                          SCALE_HEARTBEAT_INTERVAL=self.settings["HEARTBEAT_INTERVAL"])
        self.fleet = Proc(argv, env, self.directory / "fleet.log")

    def fleet_status(self) -> dict[str, Any]:
        assert self.fleet is not None
        if self.fleet.popen.poll() is not None:
            raise AssertionError(f"fleet exited:\n{self.fleet.output()[-3000:]}")
        path = Path(str(self.fleet_out) + ".status")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def stop_fleet(self) -> dict[str, Any]:
        assert self.fleet is not None
        self.fleet.send(signal.SIGTERM)
        self.fleet.wait(30)
        self.fleet.stop()
        return json.loads(self.fleet_out.read_text())

    def alive(self) -> dict[str, list[bool]]:
        return {"workers": [pid_alive(p.pid) for p in self.workers],
                "schedulers": [pid_alive(p.pid) for p in self.schedulers]}

    def stop(self) -> None:
        deadline = time.monotonic() + 30
        for proc in [self.fleet, *self.schedulers, *self.workers]:
            if proc is not None:
                proc.stop()
        for hub in self.hubs:
            hub.stop(signal.SIGQUIT)
        if self.haproxy is not None:
            self.haproxy.stop()
        self.redis.stop()
        assert time.monotonic() < deadline + 60
