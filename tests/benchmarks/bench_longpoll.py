"""Benchmark: 2,000 idle long-polling agents held by one hub process, and the API beside them.

Run by hand: ``.venv/bin/python -m tests.benchmarks.bench_longpoll``
(``BENCH_POLLERS`` changes the number of simulated agents, ``BENCH_HUB_WORKERS``
the hub's gunicorn gevent workers (default 1), ``BENCH_POLL_WAIT`` the poll
wait: 10,000 idle agents are measured with ``BENCH_POLLERS=10000
BENCH_HUB_WORKERS=4 BENCH_POLL_WAIT=60`` and a Redis whose ``maxclients``
exceeds the pollers, given in ``REDIS_URL``). The agents are registered over HTTP, then
a separate process (this module with ``--pollers``) keeps one blocking
``POST /agent/poll`` with ``wait=25`` open per agent, from greenlets speaking
raw HTTP/1.1 over ``gevent.socket`` (no monkey-patching needed). Meanwhile
this process measures ``GET /jobs`` and ``GET /health`` one request at a time.

Floor: the same requests against the same hub before any poll is open. Held
polls are counted on the hub side: Redis clients blocked in a blocking pop
(``CLIENT LIST``, flag ``b``) and the worker's established TCP connections.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gevent
import psutil
import redis
import requests
from gevent import socket
from gevent.pool import Pool

from tests.benchmarks.harness import (
    Backend,
    Hub,
    Table,
    cpu_seconds,
    describe_machine,
    ms,
    percentile,
    raise_fd_limit,
    ratio,
    stop_all,
)
from tests.e2e.proc_helpers import BIN, REPO, process_env

POLLERS = int(os.environ.get("BENCH_POLLERS", "2000"))
HUB_WORKERS = int(os.environ.get("BENCH_HUB_WORKERS", "1"))
POLL_WAIT = float(os.environ.get("BENCH_POLL_WAIT", "25"))
SAMPLES = 200
WARMUP = 50
IDLE_AGENT = "bench-idle-target"
QUEUED_JOBS = 100
RAMP_SECONDS = 5.0
HOLD_TIMEOUT = 40.0 + POLLERS / 200
REGISTER_TIMEOUT = 120.0 + POLLERS / 20
REGISTER_CONCURRENCY = 50


# -- the poller process: greenlets over gevent sockets -------------------------------------

def poller_name(index: int) -> str:
    return f"bench-poll-{index:04d}"


def raw_post(sock: Any, host: str, path: str, key: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST on ``sock``; (status, body)."""
    payload = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("hub closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                   if line.lower().startswith("content-length:")), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("hub closed the connection")
        rest += chunk
    return int(lines[0].split()[1]), rest[:length]


def run_poller(port: int, key: str, name: str, stats: dict[str, int]) -> None:
    """Long-poll forever as agent ``name`` on one connection; reconnect on errors."""
    gevent.sleep(random.uniform(0, RAMP_SECONDS))  # agents start at different moments
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                while True:
                    stats["sent"] += 1
                    stats["open"] += 1
                    try:
                        status, _ = raw_post(sock, f"127.0.0.1:{port}", "/agent/poll", key,
                                             {"agent_name": name, "max_jobs": 1,
                                              "wait": POLL_WAIT})
                    finally:
                        stats["open"] -= 1
                    stats["answered" if status == 200 else "refused"] += 1
        except OSError:
            stats["errors"] += 1
            gevent.sleep(1)


def pollers_main(port: int, key: str, count: int) -> int:
    """``--pollers``: register ``count`` agents, then hold one poll each until killed."""
    limit = raise_fd_limit(count + 1000)
    if limit < count + 100:
        print(f"pollers: fd limit {limit} is too low for {count} sockets", file=sys.stderr)
        return 1

    def register(index: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            status, body = raw_post(sock, f"127.0.0.1:{port}", "/register-agent", key,
                                    register_body(poller_name(index)))
        if status != 200:
            raise RuntimeError(f"register {poller_name(index)}: {status} {body[:200]!r}")

    Pool(REGISTER_CONCURRENCY).map(register, range(count))
    print("registered", flush=True)
    stats = {"sent": 0, "open": 0, "answered": 0, "refused": 0, "errors": 0}
    for index in range(count):
        gevent.spawn(run_poller, port, key, poller_name(index), stats)
    while True:  # until the benchmark kills this process
        print(json.dumps(stats), flush=True)
        gevent.sleep(0.5)


def register_body(name: str) -> dict[str, Any]:
    return {"agent_name": name, "tags": [], "version": "bench", "workers": 1,
            "hostname": "bench", "manifest": {"scripts": [{"name": "noop.sh"}], "flows": []},
            "manifest_error": None}


# -- the measuring process -----------------------------------------------------------------

def latencies(session: requests.Session, url: str, key: str, count: int = SAMPLES) -> list[float]:
    """``count`` sequential GETs of ``url``; seconds each (a non-200 aborts the benchmark)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    found = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(url, headers=headers, timeout=60)
        found.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    return found


def blocked_in_redis(client: redis.Redis) -> int:
    """Redis clients blocked in a blocking pop (flag ``b``): held polls, as Redis sees them.

    RQ pops one queue with ``BLMOVE`` (through its intermediate list) and several
    with ``BLPOP``, so the flag is counted rather than a command name.
    """
    return sum(1 for info in client.client_list() if "b" in info.get("flags", ""))


def hub_connections(pids: Iterable[int], port: int) -> int:
    """Established TCP connections on the hub's port, in its worker processes."""
    total = 0
    for pid in pids:
        total += sum(1 for c in psutil.Process(pid).net_connections("tcp")
                     if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
    return total


def queue_idle_jobs(session: requests.Session, hub: Hub, key: str) -> None:
    """Give GET /jobs rows to list: jobs for an agent that never polls."""
    headers = {"Authorization": f"Bearer {key}"}
    session.post(f"{hub.url}/register-agent", headers=headers, timeout=30,
                 json=register_body(IDLE_AGENT)).raise_for_status()
    for _ in range(QUEUED_JOBS):
        session.post(f"{hub.url}/trigger-script", headers=headers, timeout=30,
                     json={"agent": IDLE_AGENT, "run_script": "noop.sh"}).raise_for_status()


class PollerProcess:
    """The poller process; a thread follows its output (``registered``, then stats lines)."""

    def __init__(self, hub: Hub, key: str) -> None:
        self.popen = subprocess.Popen(
            [str(BIN / "python"), "-m", "tests.benchmarks.bench_longpoll", "--pollers",
             str(hub.port), str(POLLERS)], env=process_env(os.environ, BENCH_POLL_KEY=key),
            cwd=str(REPO), stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
            start_new_session=True)
        self.registered = threading.Event()
        self.stats: dict[str, int] = {}
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self) -> None:
        for line in self.popen.stdout:  # type: ignore[union-attr]
            if line.strip() == "registered":
                self.registered.set()
            elif line.startswith("{"):
                self.stats = json.loads(line)

    def wait_registered(self, timeout: float) -> None:
        if not self.registered.wait(timeout):
            raise RuntimeError(f"the pollers did not register within {timeout:g}s")
        while not self.stats:
            time.sleep(0.05)

    def kill(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._reader.join(5)


def wait_for_held(client: redis.Redis) -> tuple[int, float]:
    """Wait until every poll is blocked in Redis; (most seen at once, seconds it took)."""
    started, best = time.monotonic(), 0
    while time.monotonic() - started < HOLD_TIMEOUT and best < POLLERS:
        time.sleep(0.5)
        best = max(best, blocked_in_redis(client))
    return best, time.monotonic() - started


def worker_rss(hub: Hub) -> float:
    """Resident memory of the hub's worker processes, in MB."""
    return sum(psutil.Process(pid).memory_info().rss for pid in hub.worker_pids()) / 2**20


def hold_polls(backend: Backend, hub: Hub, key: str, probe: Any) -> dict[str, Any]:
    """Open every poll, then ``probe()`` while they are held; what the hub showed meanwhile."""
    assert hub.proc is not None
    client, found = backend.redis(), {"rss_before": worker_rss(hub)}
    pollers = PollerProcess(hub, key)
    try:
        pollers.wait_registered(REGISTER_TIMEOUT)
        cpu_before, sent_before = cpu_seconds([hub.proc.pid]), pollers.stats["sent"]
        found["held"], found["ramp"] = wait_for_held(client)
        cpu_held, sent_held = cpu_seconds([hub.proc.pid]), pollers.stats["sent"]
        found["poll_cpu"] = (cpu_held - cpu_before) / max(sent_held - sent_before, 1)
        found["connections"] = hub_connections(hub.worker_pids(), hub.port)
        found["rss_held"] = worker_rss(hub)
        found["loaded"] = probe()
        found["held_after"] = blocked_in_redis(client)
    finally:
        pollers.kill()
        found["client"] = pollers.stats
    return found


def measure(backend: Backend, hub: Hub) -> Table:
    keys = hub.mint_keys({"bench-operator": "operator", "bench-agents": "admin"})
    session = requests.Session()
    queue_idle_jobs(session, hub, keys["bench-agents"])
    jobs_url, health_url = f"{hub.url}/jobs", f"{hub.url}/health"

    def probe() -> dict[str, list[float]]:
        return {"jobs": latencies(session, jobs_url, keys["bench-operator"]),
                "health": latencies(session, health_url, "")}

    latencies(session, jobs_url, keys["bench-operator"], WARMUP)
    floor = probe()
    found = hold_polls(backend, hub, keys["bench-agents"], probe)
    return render(backend, floor, found)


def render(backend: Backend, floor: dict[str, list[float]], found: dict[str, Any]) -> Table:
    table = Table(f"Idle long-polls: {POLLERS} simulated agents on one hub "
                  f"({HUB_WORKERS} worker process{'es' if HUB_WORKERS > 1 else ''})",
                  f"{backend.describe()}, gunicorn -w {HUB_WORKERS} gevent, POLL_WAIT "
                  f"{POLL_WAIT:g} s, pollers in a separate gevent process, "
                  f"{describe_machine()}")
    for what, label in (("jobs", "GET /jobs"), ("health", "GET /health")):
        for p in (50, 99):
            ours, base = percentile(found["loaded"][what], p), percentile(floor[what], p)
            table.add(f"{label} p{p} (floor: no polls open)", ms(ours), ms(base),
                      ratio(ours, base))
    table.add("polls blocked in Redis (CLIENT LIST flags=b), max", str(found["held"]),
              str(POLLERS))
    table.add("  ... after the GET measurements", str(found["held_after"]), str(POLLERS))
    table.add("hub worker's established TCP connections", str(found["connections"]))
    table.add("hub worker RSS (floor: before the polls)", f"{found['rss_held']:.0f} MB",
              f"{found['rss_before']:.0f} MB", ratio(found["rss_held"], found["rss_before"]))
    per_poll = (found["rss_held"] - found["rss_before"]) * 1024 / max(found["held"], 1)
    table.add("  => hub memory per waiting agent", f"{per_poll:.0f} KB")
    table.add("hub CPU per poll request (while taking them in)", ms(found["poll_cpu"]))
    # Every held poll is answered after POLL_WAIT and re-armed at once: the idle cost.
    table.add(f"  => re-arming {POLLERS} polls every {POLL_WAIT:g} s",
              f"{found['poll_cpu'] * POLLERS / POLL_WAIT:.0%} of a core")
    reached = found["held"] >= POLLERS
    table.add("time until all polls were held at once",
              f"{found['ramp']:.1f} s" if reached else f"not within {HOLD_TIMEOUT:g} s")
    stats = found["client"]
    table.add("polls sent / answered / refused / connection errors (client)",
              f"{stats.get('sent')} / {stats.get('answered')} / {stats.get('refused')} / "
              f"{stats.get('errors')}")
    table.notes.append(f"GET /jobs lists {QUEUED_JOBS} pending jobs (limit 50); "
                       f"{SAMPLES} sequential requests per figure; pollers start over "
                       f"{RAMP_SECONDS:g} s")
    return table


def main() -> int:
    raise_fd_limit(4 * POLLERS + 2000)  # the hub inherits it: a socket + a Redis client each
    with tempfile.TemporaryDirectory(prefix="scriptmesh-bench-longpoll-") as tmp:
        workdir = Path(tmp)
        backend = Backend(workdir).start()
        hub = Hub(backend, workdir, workers=HUB_WORKERS, POLL_WAIT=str(POLL_WAIT))
        try:
            hub.start()
            measure(backend, hub).print()
        except Exception:
            print(f"hub log:\n{hub.log_tail()}", file=sys.stderr)
            raise
        finally:
            stop_all([hub, backend])
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pollers"]:
        sys.exit(pollers_main(int(sys.argv[2]), os.environ["BENCH_POLL_KEY"], int(sys.argv[3])))
    sys.exit(main())
