"""REDIS_SENTINELS: every process finds the current Redis master through Sentinel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import limits.storage
import pytest
import redis

from orchestrator import create_app
from orchestrator.extensions import redis_store
from orchestrator.redis_connection import (
    RedisConfigError,
    connect,
    limiter_storage_uri,
    sentinel_addresses,
)
from tests.conftest import TEST_SECRETS
from tests.scale.services import MASTER_NAME, RedisHA, have

needs_sentinel = pytest.mark.skipif(not have("redis-server", "redis-sentinel"),
                                    reason="needs Debian's redis-server and redis-sentinel")


def test_sentinel_addresses():
    assert sentinel_addresses(" a:26379, b.example:26380 ,[::1]:1") == [
        ("a", 26379), ("b.example", 26380), ("::1", 1)]
    for bad in ("", " , ", "host", "host:", ":26379", "host:port"):
        with pytest.raises(RedisConfigError):
            sentinel_addresses(bad)


def test_limiter_storage_uri():
    assert limiter_storage_uri({"REDIS_URL": "redis://h:6379/2"}) == "redis://h:6379/2"
    assert limiter_storage_uri({"REDIS_URL": "unix:///tmp/r.sock"}) == "redis+unix:///tmp/r.sock"
    config = {"REDIS_URL": "redis://ignored", "REDIS_SENTINELS": "s1:26379,[::1]:26380",
              "REDIS_SENTINEL_MASTER": "prod"}
    assert limiter_storage_uri(config) == "redis+sentinel://s1:26379,[::1]:26380/prod"
    assert limiter_storage_uri({"REDIS_SENTINELS": "s1:1"}).endswith("/scriptmesh")


@pytest.fixture
def redis_ha(tmp_path: Path) -> Iterator[RedisHA]:
    ha = RedisHA(tmp_path)
    try:
        yield ha.start()
    finally:
        ha.stop()  # also after a failed start: every server it began


def retrying(action, timeout: float = 10.0):
    """What a caller sees across a failover: errors until the new master answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@needs_sentinel
@pytest.mark.slow
def test_app_redis_and_rate_limits_follow_a_failover(redis_ha: RedisHA, tmp_path: Path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
                      "REDIS_URL": None, **redis_ha.env(), **TEST_SECRETS})
    assert not (tmp_path / "data" / "redis.sock").exists()  # no embedded server involved
    with app.app_context():
        connection = redis_store.connection
    connection.set("before", "1")
    assert redis_ha.master.client().get("before") == b"1"
    storage = limits.storage.storage_from_string(app.config["RATELIMIT_STORAGE_URI"],
                                                 use_replicas=False)
    assert storage.check()

    took = redis_ha.fail_over()
    assert took < 20
    retrying(lambda: connection.set("after", "2"))
    assert redis_ha.replica.role() == "master"
    assert redis_ha.replica.client().get("after") == b"2"
    assert redis_ha.replica.client().get("before") == b"1"  # replicated before the stop
    assert retrying(storage.check)
    assert retrying(lambda: storage.incr("rl-key", 60)) == 1


@needs_sentinel
@pytest.mark.slow
def test_connect_with_an_unknown_master_name_fails_clearly(redis_ha: RedisHA):
    client = connect({**redis_ha.env(), "REDIS_SENTINEL_MASTER": "nope"})
    with pytest.raises(redis.sentinel.MasterNotFoundError):
        client.ping()
    assert connect(redis_ha.env()).ping()
    assert redis_ha.env()["REDIS_SENTINEL_MASTER"] == MASTER_NAME
