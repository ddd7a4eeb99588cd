"""``scriptmesh scheduler``: the periodic task list, and leader election between real processes."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.periodic import PERIODIC_TASKS, PeriodicTask, configured_tasks, parse_task
from orchestrator.scheduler import LEADER_KEY, leader_ttl
from tests.e2e.proc_helpers import BIN, RUNS_KEY_ENV, Proc, process_env, wait_for

PROBE = "tests.e2e.proc_helpers:record_run"


def test_default_tasks_include_maintenance_and_resolve() -> None:
    tasks = configured_tasks({})

    assert [(t.interval, t.target) for t in tasks] == [(float(s), t) for s, t in PERIODIC_TASKS]
    assert PeriodicTask(2, "orchestrator.services.maintenance:run_maintenance") in tasks
    assert all(callable(task.resolve()) for task in tasks)


def test_environment_override_replaces_the_list() -> None:
    tasks = configured_tasks({"SCRIPTMESH_PERIODIC_TASKS": f"1:{PROBE}, 0.5:os:getpid"})

    assert tasks == [PeriodicTask(1.0, PROBE), PeriodicTask(0.5, "os:getpid")]


@pytest.mark.parametrize("entry", ["x:os:getpid", "0:os:getpid", "5:os", "5:", "os:getpid"])
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="seconds:module:function"):
        parse_task(entry)


def test_unknown_function_fails_at_resolve() -> None:
    with pytest.raises(ValueError, match="no callable"):
        PeriodicTask(1, "os:no_such_function").resolve()


def test_leader_ttl_from_environment() -> None:
    assert leader_ttl({"SCRIPTMESH_LEADER_TTL": "2.5"}) == 2.5
    assert leader_ttl({}) > 0
    with pytest.raises(ValueError):
        leader_ttl({"SCRIPTMESH_LEADER_TTL": "-1"})


# -- real processes ------------------------------------------------------------------------

@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(LEADER_KEY)
    yield client
    client.delete(LEADER_KEY)
    client.close()


def start_scheduler(hub_env: dict[str, str], runs_key: str, log: Path) -> Proc:
    env = process_env(hub_env, SCRIPTMESH_PERIODIC_TASKS=f"0.3:{PROBE}",
                      SCRIPTMESH_LEADER_TTL="1.5", **{RUNS_KEY_ENV: runs_key})
    return Proc([str(BIN / "scriptmesh"), "scheduler"], env, log)


def runs(connection: redis.Redis, key: str) -> list[int]:
    return [int(pid) for pid in connection.lrange(key, 0, -1)]


@pytest.mark.slow
def test_two_schedulers_run_tasks_only_on_the_leader_and_fail_over(
        hub_env: dict[str, str], connection: redis.Redis, tmp_path: Path) -> None:
    key = f"test:scheduler-runs:{uuid.uuid4().hex}"
    procs = [start_scheduler(hub_env, key, tmp_path / f"scheduler{i}.log") for i in (1, 2)]
    try:
        wait_for(lambda: len(runs(connection, key)) >= 8, 30, what="8 periodic runs")
        leaders = set(runs(connection, key))
        assert len(leaders) == 1, f"both schedulers ran the task: {leaders}"
        (leader_pid,) = leaders
        leader = next(p for p in procs if p.pid == leader_pid)
        follower = next(p for p in procs if p.pid != leader_pid)
        assert connection.get(LEADER_KEY).decode().split(":")[1] == str(leader_pid)

        leader.send(signal.SIGKILL)  # no release: the follower must wait out the TTL
        leader.wait(10)
        seen = len(runs(connection, key))
        wait_for(lambda: follower.pid in runs(connection, key), 10, what="takeover")
        assert set(runs(connection, key)[seen:]) == {follower.pid}
        assert "is now the leader" in follower.output()

        follower.send(signal.SIGTERM)
        assert follower.wait(15) == 0, follower.output()
        assert connection.get(LEADER_KEY) is None, "a clean stop releases the lock"
        assert "leader lock released" in follower.output()
    finally:
        for proc in procs:
            proc.stop()
        connection.delete(key)
