"""Real infrastructure started by tests on free loopback ports: Redis + Sentinel, HAProxy.

Each server is a Debian binary (``redis-server``, ``redis-sentinel``,
``haproxy``) run as a ``Proc`` from ``tests/e2e/proc_helpers.py`` with its
config in the test's temporary directory; ``stop()`` ends every one of them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.e2e.proc_helpers import Proc, free_port, wait_for

MASTER_NAME = "scriptmesh"
#: Sentinel's view: a master silent for this long is down, then one failover at a time.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 6000


def have(*binaries: str) -> bool:
    return all(shutil.which(name) for name in binaries)


class RedisServer:
    """One ``redis-server`` without persistence; a replica of ``master_port`` if given."""

    def __init__(self, directory: Path, name: str, master_port: int | None = None) -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.master_port = master_port
        self.proc: Proc | None = None
        self.starts = 0

    def start(self) -> RedisServer:
        self.starts += 1
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--maxclients", "20000"]
        if self.master_port:
            argv += ["--replicaof", "127.0.0.1", str(self.master_port)]
        self.proc = Proc(argv, {"PATH": "/usr/bin:/bin:/usr/sbin"},
                         self.directory / f"{self.name}-{self.starts}.log")
        wait_for(self.ping, 15, what=f"{self.name} up")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def role(self) -> str:
        return self.client().info("replication")["role"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.popen.poll() is None:
            self.proc.send(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.proc.stop()
        self.proc = None


class Sentinels:
    """``count`` sentinels watching ``master`` (quorum: a majority)."""

    def __init__(self, directory: Path, master: RedisServer, count: int = 3) -> None:
        self.directory = directory / "sentinels"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.master = master
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[Proc] = []

    @property
    def addresses(self) -> str:
        """The ``REDIS_SENTINELS`` value."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> Sentinels:
        quorum = len(self.ports) // 2 + 1
        binary = "redis-sentinel" if have("redis-sentinel") else "redis-server"
        for index, port in enumerate(self.ports):
            config = self.directory / f"sentinel-{index}.conf"  # sentinel rewrites it
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            argv = [binary, str(config)] + ([] if binary == "redis-sentinel" else ["--sentinel"])
            self.procs.append(Proc(argv, {"PATH": "/usr/bin:/bin:/usr/sbin"},
                                   self.directory / f"sentinel-{index}.log"))
        wait_for(lambda: all(self._sees_replicas(p) for p in self.ports), 20,
                 what="sentinels see the master and its replica")
        return self

    def _sees_replicas(self, port: int) -> bool:
        try:
            client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2)
            return len(client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)) >= 1
        except redis.RedisError:
            return False

    def master_port(self) -> int | None:
        try:
            client = redis.Redis(port=self.ports[0], socket_connect_timeout=1, socket_timeout=2)
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            return int(address[1])
        except (redis.RedisError, TypeError):
            return None

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


class RedisHA:
    """A master, one replica and three sentinels: what ``REDIS_SENTINELS`` points at."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory, "redis-a")
        self.replica = RedisServer(directory, "redis-b", master_port=self.master.port)
        self.sentinels = Sentinels(directory, self.master)

    def start(self) -> RedisHA:
        self.master.start()
        self.replica.start()
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"]
                 == "up", 20, what="replica in sync")
        self.sentinels.start()
        return self

    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": self.sentinels.addresses, "REDIS_SENTINEL_MASTER": MASTER_NAME}

    def fail_over(self, timeout: float = 30) -> float:
        """Stop the current master; wait until Sentinel has promoted the other; seconds taken."""
        current = self.sentinels.master_port()
        old, new = ((self.master, self.replica) if current == self.master.port
                    else (self.replica, self.master))
        started = time.monotonic()
        old.stop()
        wait_for(lambda: self.sentinels.master_port() == new.port and new.role() == "master",
                 timeout, interval=0.2, what="Sentinel promoted the replica")
        return time.monotonic() - started

    def stop(self) -> None:
        self.sentinels.stop()
        self.replica.stop()
        self.master.stop()


class HAProxy:
    """HAProxy on a loopback port, round-robin over the hub backends, health-checking /health."""

    def __init__(self, directory: Path, backends: list[int]) -> None:
        self.directory = directory
        self.port = free_port()
        self.backends = backends
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        servers = "\n".join(
            f"    server hub{i} 127.0.0.1:{port} check inter 500 fall 2 rise 2"
            for i, port in enumerate(self.backends))
        config = self.directory / "haproxy.cfg"
        # Idle timeouts above POLL_WAIT; a request to a dead hub is retried on another.
        config.write_text(f"""global
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 90s
    timeout server 90s
    timeout http-keep-alive 75s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
frontend hubs
    bind 127.0.0.1:{self.port}
    default_backend hubs
backend hubs
    balance roundrobin
    option httpchk GET /health
{servers}
""")
        self.proc = Proc(["haproxy", "-f", str(config), "-db"], {"PATH": "/usr/sbin:/usr/bin:/bin"},
                         self.directory / "haproxy.log")
        wait_for(self._up, 15, what="haproxy up")
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"haproxy exited:\n{self.proc.output()}")
        try:
            import socket

            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
