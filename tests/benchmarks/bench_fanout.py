"""Benchmark: one fan-out to 1,000 agents against a live hub (gunicorn + gevent).

Run by hand: ``.venv/bin/python -m tests.benchmarks.bench_fanout`` (``BENCH_AGENTS``
changes the fleet size, ``BENCH_DATABASE_URL`` runs it on PostgreSQL instead of
the embedded SQLite). The hub runs as in production (gunicorn, gevent workers,
its own Redis); the agents are greenlets in this process speaking the real
HTTP protocol: each registers, keeps a long-poll open, and reports a ``noop.sh``
result the moment it gets a job. Measured: the latency of ``POST /fanouts``, the
rows it wrote, the time until every job reached its agent, and the time until
the hub reported the fan-out done.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - the monkey-patching above must come before every other import
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import requests
import sqlalchemy as sa
from gevent.pool import Pool

from tests.benchmarks.live_hub import LiveHub

AGENTS = int(os.environ.get("BENCH_AGENTS", "1000"))
TAG = "bench"
SCRIPT = "noop.sh"
POLL_WAIT = 20.0
REGISTER_CONCURRENCY = 25
#: Client-side timeout of every call: an overloaded hub answers late, it still answers.
CALL_TIMEOUT = 120.0
DEADLINE = 120.0


@dataclass
class Fleet:
    """What the simulated agents saw, by agent name (monotonic clock)."""

    received: dict[str, float] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)
    polling: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stop: bool = False


def agent_name(index: int) -> str:
    return f"bench-{index:04d}"


def register(session: requests.Session, url: str, key: str, name: str) -> None:
    body = {"agent_name": name, "tags": [TAG], "version": "bench", "workers": 1,
            "hostname": "bench", "manifest": {"scripts": [{"name": SCRIPT}], "flows": []},
            "manifest_error": None}
    response = session.post(f"{url}/register-agent", json=body,
                            headers={"Authorization": f"Bearer {key}"}, timeout=30)
    response.raise_for_status()


def run_agent(url: str, key: str, name: str, fleet: Fleet) -> None:
    """Long-poll until stopped; start and finish every job at once (a noop script)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    while not fleet.stop:
        try:
            fleet.polling.add(name)
            response = session.post(f"{url}/agent/poll", headers=headers, timeout=CALL_TIMEOUT,
                                    json={"agent_name": name, "max_jobs": 1, "wait": POLL_WAIT})
            response.raise_for_status()
            for job in response.json()["jobs"]:
                fleet.received[name] = time.monotonic()
                run_job(session, url, headers, name, job["job_id"])
                fleet.reported[name] = time.monotonic()
        except (requests.RequestException, RuntimeError) as exc:
            if not fleet.stop:
                fleet.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                gevent.sleep(1)


def send(session: requests.Session, url: str, headers: dict[str, str],
         body: dict[str, Any]) -> None:
    """POST like the real agent: 5xx and network errors are retried with backoff."""
    for attempt in range(6):
        try:
            response = session.post(url, json=body, headers=headers, timeout=CALL_TIMEOUT)
            if response.status_code < 500:
                response.raise_for_status()
                return
        except requests.ConnectionError:
            pass
        gevent.sleep(min(0.5 * 2 ** attempt, 5))
    raise RuntimeError(f"{url}: gave up")


def run_job(session: requests.Session, url: str, headers: dict[str, str], name: str,
            job_id: str) -> None:
    send(session, f"{url}/agent/jobs/{job_id}/start", headers, {"agent_name": name})
    result = {"agent_name": name, "status": "success", "exit_code": 0, "stdout": "",
              "stderr": "", "truncated": {"stdout": False, "stderr": False}, "duration_ms": 1,
              "error": None}
    send(session, f"{url}/agent/jobs/{job_id}/result", headers, result)


#: The tables a fan-out writes to (others change meanwhile: agents' liveness, their events).
FANOUT_TABLES = ("fanouts", "jobs")


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per fan-out table (to count what one API call wrote)."""
    with engine.connect() as connection:
        return {t: connection.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in FANOUT_TABLES}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"benchmark: {what} not reached within {timeout:.0f}s")
        gevent.sleep(0.05)
    return time.monotonic()


def measure(hub: LiveHub, engine: sa.Engine, fleet: Fleet) -> dict[str, Any]:
    """Trigger the fan-out and time its way to every agent and back."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {hub.admin_key}"}
    before = row_counts(engine)
    started = time.monotonic()
    response = session.post(f"{hub.url}/fanouts", headers=headers, timeout=120,
                            json={"tags": [TAG], "run_script": SCRIPT})
    latency = time.monotonic() - started
    response.raise_for_status()
    created = response.json()
    after = row_counts(engine)
    written = {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}
    try:
        reached = wait_until(lambda: len(fleet.received) >= AGENTS, DEADLINE,
                             "all jobs received")
    except SystemExit:
        print(f"received {len(fleet.received)}, reported {len(fleet.reported)}, "
              f"errors {len(fleet.errors)} {fleet.errors[:3]}", file=sys.stderr)
        print(hub.log_tail(), file=sys.stderr)
        raise

    def done() -> bool:
        report = session.get(f"{hub.url}/fanouts/{created['fanout_id']}", headers=headers,
                             timeout=60).json()
        return bool(report["done"])

    finished = wait_until(done, DEADLINE, "fan-out done")
    report = session.get(f"{hub.url}/fanouts/{created['fanout_id']}", headers=headers,
                         timeout=60).json()
    arrivals = sorted(t - started for t in fleet.received.values())
    return {"jobs": len(created["jobs"]), "skipped": len(created["skipped"]),
            "latency": latency, "written": written, "reached": reached - started,
            "p50_arrival": statistics.median(arrivals), "finished": finished - started,
            "success": report["counts"]["success"]}


def print_table(result: dict[str, Any], setup: str) -> None:
    rows = [
        ("Setup", setup),
        ("Jobs created / skipped", f"{result['jobs']} / {result['skipped']}"),
        ("POST /fanouts latency", f"{result['latency'] * 1000:.0f} ms"),
        ("Rows written by the call",
         f"{sum(result['written'].values())} ({', '.join(f'{t}: {n}' for t, n in sorted(result['written'].items()))})"),  # noqa: E501
        ("Job reached its agent, p50", f"{result['p50_arrival']:.2f} s"),
        ("All jobs reached their agents", f"{result['reached']:.2f} s"),
        ("Fan-out done (all results in)", f"{result['finished']:.2f} s"),
        ("Jobs succeeded", str(result["success"])),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nFan-out benchmark: {AGENTS} agents\n")
    print(f"| {'Measure'.ljust(width)} | Result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="scriptmesh-bench-") as tmp:
        hub = LiveHub(Path(tmp), database_url=os.environ.get("BENCH_DATABASE_URL"),
                      poll_wait=POLL_WAIT, workers=int(os.environ.get("BENCH_WORKERS", "2")))
        fleet = Fleet()
        try:
            hub.start()
            print(f"hub at {hub.url} ({hub.database_kind}); registering {AGENTS} agents ...",
                  file=sys.stderr)
            session = requests.Session()
            Pool(REGISTER_CONCURRENCY).map(
                lambda i: register(session, hub.url, hub.admin_key, agent_name(i)),
                range(AGENTS))
            greenlets = [gevent.spawn(run_agent, hub.url, hub.admin_key, agent_name(i), fleet)
                         for i in range(AGENTS)]
            wait_until(lambda: len(fleet.polling) >= AGENTS, 60, "every agent polling")
            gevent.sleep(3)  # let every long-poll reach the hub and block in Redis
            engine = sa.create_engine(hub.database_url)
            result = measure(hub, engine, fleet)
            engine.dispose()
            setup = (f"{hub.database_kind}, Redis, gunicorn {hub.workers} gevent workers, "
                     f"{os.cpu_count()} cores; agents: greenlets over HTTP")
            print_table(result, setup)
            if fleet.errors:
                print(f"\n{len(fleet.errors)} agent errors, first: {fleet.errors[0]}",
                      file=sys.stderr)
        finally:
            fleet.stop = True
            hub.stop()
            gevent.killall(locals().get("greenlets", []), timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
