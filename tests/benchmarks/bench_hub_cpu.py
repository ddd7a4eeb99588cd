"""Hub CPU per request of the job hot path, in-process: the figure the protocol's cost is.

One app from ``create_app`` on the benchmark's database and Redis (SQLite and
an embedded Redis by default), driven through Flask's test client: no
network, no gunicorn, so what is measured is the hub's own code per request
(authentication, parsing, SQL, serialization). Each request's CPU time is
``time.process_time()`` around it. The floor in the same run is the cheapest
request the app answers (``GET /health`` without authentication) and a bare
Redis round trip.

``python -m tests.benchmarks.bench_hub_cpu [--jobs N] [--profile]``: ``--profile``
prints the top functions for each request kind (``BENCH_SORT=tottime``,
``BENCH_TOP=40`` to change the order and length).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import create_app
from orchestrator.extensions import db, redis_store
from tests.benchmarks.harness import percentile

SECRETS = {"SECRET_KEY": "bench-secret-" + "x" * 40, "JWT_SECRET_KEY": "bench-jwt-" + "y" * 40,
           "ENCRYPTION_KEY": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
KINDS = ("trigger", "poll", "start", "result", "get_job", "heartbeat", "list_jobs")


def build_app(data_dir: Path) -> tuple[Any, Callable[[], None]]:
    """An app on $DATABASE_URL / $REDIS_URL, or SQLite + an embedded Redis in ``data_dir``."""
    from flask_migrate import upgrade

    stop: Callable[[], None] = lambda: None  # noqa: E731
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        from orchestrator.embedded_redis import start_embedded_redis, stop_embedded_redis
        server, redis_url = start_embedded_redis(data_dir / "redis")
        stop = lambda: stop_embedded_redis(server)  # noqa: E731
    database = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'bench.db'}"
    app = create_app({"DATA_DIR": str(data_dir), "SQLALCHEMY_DATABASE_URI": database,
                      "REDIS_URL": redis_url, "RATELIMIT_ENABLED": False, **SECRETS})
    with app.app_context():
        upgrade()
    return app, stop


def credentials(app: Any) -> tuple[str, str]:
    from orchestrator.services import accounts, api_keys

    with app.app_context():
        user = accounts.create_user(f"bench-{os.urandom(3).hex()}@bench.example",
                                    "correct horse battery staple", verified=True)
        _k, operator = api_keys.create_api_key(user, "bench", scope="operator")
        _k, agent = api_keys.create_api_key(user, "bench-agent", scope="agent")
        db.session.commit()
    return operator, agent


def run(jobs: int, profile: bool) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        app, stop = build_app(Path(tmp))
        try:
            return measure(app, jobs, profile)
        finally:
            stop()


def measure(app: Any, jobs: int, profile: bool) -> dict[str, list[float]]:
    operator, agent_key = credentials(app)
    client = app.test_client()
    op = {"Authorization": f"Bearer {operator}"}
    ag = {"Authorization": f"Bearer {agent_key}"}
    name = "bench-agent"
    manifest = {"scripts": [{"name": "noop.sh", "path": "noop.sh"}], "flows": []}
    assert client.post("/register-agent", headers=ag, json={
        "agent_name": name, "manifest": manifest, "version": "bench"}).status_code == 200
    cpu: dict[str, list[float]] = defaultdict(list)
    profiles = {kind: cProfile.Profile() for kind in KINDS} if profile else {}

    def timed(kind: str, call: Callable[[], Any]) -> Any:
        profiler = profiles.get(kind)
        started = time.process_time()
        if profiler:
            profiler.enable()
        response = call()
        if profiler:
            profiler.disable()
        cpu[kind].append(time.process_time() - started)
        assert response.status_code < 300, (kind, response.status_code, response.get_json())
        return response.get_json()

    for i in range(jobs + 20):
        warm = i < 20  # first requests compile statements and fill caches
        trig = timed("trigger", lambda: client.post("/trigger-script", headers=op, json={
            "agent": name, "run_script": "noop.sh"}))
        job_id = trig["job_id"]
        polled = timed("poll", lambda: client.post("/agent/poll", headers=ag, json={
            "agent_name": name, "wait": 0, "max_jobs": 1}))
        assert [j["job_id"] for j in polled["jobs"]] == [job_id]
        base = f"/agent/jobs/{job_id}"
        timed("start", lambda b=base: client.post(f"{b}/start", headers=ag,
                                                  json={"agent_name": name}))
        timed("heartbeat", lambda j=job_id: client.post("/agent/heartbeat", headers=ag, json={
            "agent_name": name, "running_jobs": [j]}))
        timed("result", lambda b=base: client.post(f"{b}/result", headers=ag, json={
            "agent_name": name, "status": "success", "exit_code": 0, "stdout": "ok\n",
            "stderr": "", "duration_ms": 3}))
        timed("get_job", lambda j=job_id: client.get(f"/jobs/{j}", headers=op))
        if i % 10 == 0:
            timed("list_jobs", lambda: client.get("/jobs?limit=50", headers=op))
        if warm:
            for values in cpu.values():
                values.clear()
    health = []
    for _ in range(200):
        started = time.process_time()
        client.get("/health")
        health.append(time.process_time() - started)
    cpu["floor: GET /health"] = health
    with app.app_context():
        connection = redis_store.connection
        ping = []
        for _ in range(200):
            started = time.process_time()
            connection.ping()
            ping.append(time.process_time() - started)
        cpu["floor: Redis PING"] = ping
    for kind, profiler in profiles.items():
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(os.environ.get("BENCH_SORT", "cumulative"))
        stats.print_stats(int(os.environ.get("BENCH_TOP", "18")))
        print(f"\n### profile: {kind}\n{out.getvalue()}")
    return cpu


def report(cpu: dict[str, list[float]]) -> None:
    print("| request | hub CPU p50 | mean | p90 |")
    print("|---|---|---|---|")
    for kind, values in cpu.items():
        mean = sum(values) / len(values)
        print(f"| {kind} | {percentile(values, 50) * 1000:.2f} ms | {mean * 1000:.2f} ms | "
              f"{percentile(values, 90) * 1000:.2f} ms |")
    per_job = sum(sum(cpu[k]) / len(cpu[k]) for k in ("trigger", "poll", "start", "result"))
    print(f"\nhub CPU per script job (trigger + poll + start + result, means): "
          f"{per_job * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    backend = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") \
        else "SQLite"
    print(f"hub CPU per request, in-process, {backend}, {args.jobs} jobs")
    report(run(args.jobs, args.profile))


if __name__ == "__main__":
    main()
