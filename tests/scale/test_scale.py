"""Fleet scale with failovers: HAProxy -> 3 hubs, 2 workers, 2 schedulers, PostgreSQL, Sentinel.

Short form in CI (PostgreSQL phase only); ``SCALE_LONG=1`` runs the long form
(2,000 agents, 50 triggers/s for 5 minutes). During the load: a hub replica is
``kill -9``ed and restarted, the Redis master is stopped and Sentinel promotes
the replica, and the leading scheduler is ``kill -9``ed just before a minute
boundary while 20 every-minute cron schedules run. Counted from the database
and the agents: every trigger made exactly one job, every job ran exactly once
and succeeded, every cron fire happened exactly once, and no client saw an
error after its retries. Figures are printed (``-s``) for the README.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.proc_helpers import wait_for
from tests.scale.cluster import Cluster
from tests.scale.load import Load, agent_name, percentile
from tests.scale.services import have

LONG = os.environ.get("SCALE_LONG") == "1"
AGENTS = int(os.environ.get("SCALE_AGENTS", "2000" if LONG else "200"))
RATE = float(os.environ.get("SCALE_RATE", "50" if LONG else "5"))
LOAD_SECONDS = float(os.environ.get("SCALE_SECONDS", "300" if LONG else "70"))
#: Steady-state GET /jobs/{id} p99 bound (ms). The issue's target is 100 ms; the short form
#: shares 2 cores between 3 hubs, PostgreSQL, Redis, the fleet and the load.
P99_LIMIT_MS = float(os.environ.get("SCALE_P99_MS", "100" if LONG else "3000"))
CRON_SCHEDULES = 20
READS = 20.0 if LONG else 5.0  # GET /jobs/{id} per second
#: Reads this long after a failure are counted apart from the steady-state p99.
FAILURE_WINDOW = 10.0
#: LEASE_SECONDS is the default (30): a start acknowledgement that arrives after
#: the lease finds its job requeued (409), and on a starved machine 10 s was too short.
SETTINGS = {"POLL_WAIT": "20", "LEASE_SECONDS": "30", "HEARTBEAT_INTERVAL": "30",
            "OFFLINE_AFTER_MISSED": "4", "WEB_CONCURRENCY": "1", "DATABASE_POOL_SIZE": "3",
            "DATABASE_MAX_OVERFLOW": "7", "SCRIPTMESH_LEADER_TTL": "6", "LOG_LEVEL": "warning",
            "SCRIPTMESH_ENV": "production"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.scale,
    pytest.mark.timeout(900 if LONG else 360),
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgresql"),
                       reason="the scale test runs on PostgreSQL (DATABASE_URL)"),
    pytest.mark.skipif(not have("haproxy", "redis-server", "redis-sentinel"),
                       reason="needs Debian's haproxy, redis-server and redis-sentinel"),
]


@pytest.fixture
def cluster(app, hub_env: dict[str, str], tmp_path: Path):
    running = Cluster(tmp_path, hub_env, SETTINGS)
    try:
        yield running.start()
    finally:
        running.stop()


def create_schedules(url: str, token: str) -> list[str]:
    from tests.e2e.proc_helpers import http

    ids = []
    for index in range(CRON_SCHEDULES):
        status, body = http("POST", url + "/schedules", token=token, body={
            "agent": agent_name(index), "script": "noop.sh", "cron_expression": "* * * * *",
            "name": f"scale-cron-{index}", "overlap_policy": "allow"})  # one job per fire
        assert status == 201, body
        ids.append(body["id"])
    return ids


def plan(started_wall: float) -> dict[str, float]:
    """When each failure happens (seconds into the load), spaced >= 12 s apart.

    The leader scheduler dies 2 s before the first minute boundary at least 10 s
    in, so that cron fire falls in the leaderless gap; the hub kill and the
    Redis failover take the free slots around it.
    """
    boundary = 60 - started_wall % 60
    leader = boundary - 2 if boundary - 2 >= 10 else boundary + 58
    slots = [t for t in (8.0, 20.0, 32.0, 44.0, 56.0, 68.0, 80.0) if abs(t - leader) >= 12]
    return {"hub": slots[0], "redis": slots[1], "leader": leader,
            "end": max(LOAD_SECONDS, leader + 15, slots[1] + 12)}


def run_timeline(cluster: Cluster) -> dict[str, Any]:
    """The failovers during the load; returns when the load has run its course."""
    started = time.monotonic()
    times = plan(time.time())
    events: dict[str, Any] = {"plan": times}
    actions = sorted([(times["hub"], "hub"), (times["hub"] + 8, "hub_back"),
                      (times["redis"], "redis"), (times["leader"], "leader")])
    for at, what in actions:
        time.sleep(max(0.0, started + at - time.monotonic()))
        events.setdefault("failures", []).append(time.monotonic())
        if what == "hub":
            cluster.kill_hub(1)
        elif what == "hub_back":
            cluster.restart_hub(1)
        elif what == "redis":
            events["redis_failover_s"] = cluster.redis.fail_over()
        else:
            events["leader_killed_pid"] = cluster.kill_leader_scheduler()
            events["leader_killed_at"] = datetime.now(UTC)
            events["new_leader_after_s"] = timed(lambda: cluster.leader_pid() not in (
                None, events["leader_killed_pid"]), 30)
    time.sleep(max(0.0, started + times["end"] - time.monotonic()))
    return events


def timed(predicate, timeout: float) -> float:
    started = time.monotonic()
    wait_for(predicate, timeout, interval=0.2, what="condition")
    return time.monotonic() - started


UNFINISHED = ("SELECT id FROM jobs WHERE status NOT IN "
              "('success', 'failed', 'timeout', 'cancelled', 'expired')")


def settle(engine: sa.Engine, cluster: Cluster, timeout: float = 90) -> set[str]:
    """Wait for every job to finish; the ones still unfinished (stuck) when it is clear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unfinished = {row.id for row in fetch(engine, UNFINISHED)}
        if not unfinished:
            return set()
        if unfinished == stranded(cluster, unfinished) and time.monotonic() > deadline - 60:
            return unfinished  # nothing will move them: no need to wait the full timeout
        time.sleep(1)
    return {row.id for row in fetch(engine, UNFINISHED)}


def stranded(cluster: Cluster, job_ids: set[str]) -> set[str]:
    """The jobs Redis still holds an RQ hash for while no queue list holds their id.

    ``dispatch.pop_job_id`` pops in steps: BLMOVE into ``<queue>:intermediate``,
    LREM from there, DEL of the hash, then the lease UPDATE. A poll cut off
    between the first and the third (a Redis failover, a hub killed) leaves the
    hash behind with the id in the intermediate list or nowhere; since
    ``leases.reconcile_lost_jobs`` checks queue membership (not the hash), such a
    job is queued again. The test names them if any are left.
    """
    import redis

    client = redis.Redis(port=cluster.redis.sentinels.master_port(), socket_timeout=5)
    queued = set()
    for key in client.scan_iter(match="rq:queue:*", count=1000):
        if not key.endswith(b":intermediate") and client.type(key) == b"list":
            queued.update(v.decode() for v in client.lrange(key, 0, -1))
    return {job_id for job_id in job_ids
            if job_id not in queued and client.exists(f"rq:job:{job_id}")}


def fetch(engine: sa.Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query), params))


def test_fleet_under_load_and_failover(cluster: Cluster, make_user, make_api_key,
                                       database_url: str):
    user = make_user(admin=True)
    fleet_key = make_api_key(user["user_id"], scope="admin", name="scale-fleet")
    operator = make_api_key(user["user_id"], scope="operator", name="scale-load")
    cluster.start_fleet(fleet_key, AGENTS)
    registered = time.monotonic()
    wait_for(lambda: cluster.fleet_status().get("polling", 0) >= AGENTS, 60 + AGENTS / 10,
             interval=1, what=f"{AGENTS} agents polling")
    register_seconds = time.monotonic() - registered
    schedules = create_schedules(cluster.url, operator)
    cron_from = datetime.now(UTC)

    load = Load(cluster.url, operator, [agent_name(i) for i in range(AGENTS)], RATE,
                reads=READS).start()
    try:
        events = run_timeline(cluster)
    finally:
        result = load.stop()
    triggered_ids = set(result.triggered.values())
    engine = sa.create_engine(database_url)
    unfinished = settle(engine, cluster)
    assert not unfinished, (f"jobs never finished: {sorted(unfinished)[:10]} "
                            f"(stranded: {sorted(stranded(cluster, unfinished))[:10]})")
    cron_until = datetime.now(UTC) - timedelta(seconds=3)
    fleet = cluster.stop_fleet()
    alive = cluster.alive()

    jobs = fetch(engine, "SELECT id, status, idempotency_key, schedule_id, error FROM jobs")
    engine_runs = fetch(engine, "SELECT schedule_id, fire_time, outcome, job_ids "
                        "FROM schedule_runs")
    engine.dispose()
    runs = Counter(fleet["runs"])
    keys = Counter(row.idempotency_key for row in jobs if row.idempotency_key)
    by_key = {row.idempotency_key: row.id for row in jobs if row.idempotency_key}
    figures = {
        "agents": AGENTS, "rate": RATE, "load_seconds": LOAD_SECONDS,
        "register_seconds": round(register_seconds, 1), "triggers": len(result.triggered),
        "jobs": len(jobs), "trigger_retries": result.trigger_retries,
        "read_retries": result.read_retries, "agent_retries": fleet["retries"],
        "get_job_p50_ms": round(percentile(result.read_latencies, 0.5) * 1000, 1),
        "get_job_p99_ms": round(percentile(result.read_latencies, 0.99) * 1000, 1),
        "get_job_steady_p99_ms": round(percentile(steady(result, events), 0.99) * 1000, 1),
        "reads": len(result.read_latencies),
        "redis_failover_s": round(events["redis_failover_s"], 1),
        "new_leader_after_s": round(events["new_leader_after_s"], 1),
        "redelivered": fleet["redelivered"], "duplicates_ignored": fleet["duplicates_ignored"],
        "poll_failures": fleet["poll_failures"],
    }
    print("\nscale figures: " + json.dumps(figures))

    # No client saw an error after retries; every trigger made exactly one job.
    assert result.errors == [], result.errors[:5]
    assert fleet["errors"] == [], fleet["errors"][:5]
    assert len(result.triggered) >= 0.8 * RATE * LOAD_SECONDS
    assert all(count == 1 for count in keys.values()), [k for k, c in keys.items() if c > 1]
    assert {k: by_key.get(k) for k in result.triggered} == result.triggered  # none lost
    # Every job (triggered and cron) ran exactly once and succeeded.
    problems = [(row.id, row.status, row.error, runs.get(row.id, 0)) for row in jobs
                if row.status != "success" or runs.get(row.id, 0) != 1]
    assert problems == [], problems[:10]
    assert set(runs) <= {row.id for row in jobs} and triggered_ids <= set(runs)
    # Every cron fire in the window exactly once, including the one in the leaderless gap.
    fires = Counter((r.schedule_id, r.fire_time) for r in engine_runs
                    if cron_from < as_utc(r.fire_time) <= cron_until)
    boundaries = minute_boundaries(cron_from, cron_until)
    assert any(b > events["leader_killed_at"] for b in boundaries), boundaries
    expected = {(s, b) for s in schedules for b in boundaries}
    assert {(s, as_utc(t)) for s, t in fires} == expected
    assert set(fires.values()) == {1}
    outcomes = Counter((r.outcome, len(json_list(r.job_ids))) for r in engine_runs
                       if cron_from < as_utc(r.fire_time) <= cron_until)
    assert set(outcomes) == {("fired", 1)}, outcomes
    # The survivors kept working through the failovers.
    assert all(alive["workers"]), alive
    assert alive["schedulers"].count(True) == 1, alive
    assert figures["get_job_steady_p99_ms"] < P99_LIMIT_MS, figures


def steady(result: Any, events: dict[str, Any]) -> list[float]:
    """Read latencies outside the 10 s after each failure (steady state)."""
    return [latency for started, latency in zip(result.read_started, result.read_latencies,
                                                strict=True)
            if not any(0 <= started - failed < FAILURE_WINDOW for failed in events["failures"])]


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def json_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def minute_boundaries(after: datetime, until: datetime) -> list[datetime]:
    first = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    boundaries = []
    while first <= until:
        boundaries.append(first)
        first += timedelta(minutes=1)
    return boundaries
