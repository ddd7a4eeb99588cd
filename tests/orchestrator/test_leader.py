"""The Redis leader lock, on the real Redis: one holder, renewal, release, expiry, takeover."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from orchestrator.leader import LeaderLock


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key(connection: redis.Redis) -> Iterator[str]:
    name = f"test:leader:{uuid.uuid4().hex}"
    yield name
    connection.delete(name)


def test_only_one_of_two_acquires(connection: redis.Redis, key: str) -> None:
    first = LeaderLock(connection, key, ttl=5, identity="first")
    second = LeaderLock(connection, key, ttl=5, identity="second")

    assert first.acquire() is True
    assert second.acquire() is False
    assert first.held and not second.held
    assert first.holder() == "first"
    assert 0 < connection.pttl(key) <= 5000


def test_release_hands_over_at_once(connection: redis.Redis, key: str) -> None:
    first = LeaderLock(connection, key, ttl=5, identity="first")
    second = LeaderLock(connection, key, ttl=5, identity="second")
    first.acquire()

    assert second.release() is False, "a follower must not delete the leader's key"
    assert first.holder() == "first"
    assert first.release() is True
    assert not first.held
    assert second.acquire() is True
    assert second.holder() == "second"


def test_renew_extends_only_our_own_lock(connection: redis.Redis, key: str) -> None:
    first = LeaderLock(connection, key, ttl=1, identity="first")
    second = LeaderLock(connection, key, ttl=1, identity="second")
    first.acquire()
    connection.pexpire(key, 100)

    assert first.renew() is True
    assert connection.pttl(key) > 500
    assert second.renew() is False
    assert first.holder() == "first"


def test_expiry_lets_the_other_take_over_and_the_old_holder_notices(
        connection: redis.Redis, key: str) -> None:
    first = LeaderLock(connection, key, ttl=0.3, identity="first")
    second = LeaderLock(connection, key, ttl=0.3, identity="second")
    assert first.acquire()
    time.sleep(0.4)  # first stalls past its TTL without renewing

    assert not first.held, "the local deadline runs out no later than the key"
    assert second.acquire() is True
    assert first.renew() is False
    assert first.holder() == "second"


def test_maintain_elects_one_and_logs_changes(
        connection: redis.Redis, key: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Alembic's fileConfig (run by the migrations fixture) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("orchestrator.leader"), "disabled", False)
    caplog.set_level(logging.INFO, logger="orchestrator.leader")
    first = LeaderLock(connection, key, ttl=5, identity="first")
    second = LeaderLock(connection, key, ttl=5, identity="second")

    assert first.maintain() is True
    assert second.maintain() is False
    assert first.maintain() is True, "a leader keeps its lock by renewing"
    assert "first is now the leader" in caplog.text

    connection.set(key, "someone-else")  # e.g. an operator forced a handover
    assert first.maintain() is False
    assert "first lost leadership" in caplog.text
    connection.delete(key)
    assert second.maintain() is True
    assert "second is now the leader" in caplog.text


def test_redis_errors_do_not_crash_the_election(redis_url: str, key: str) -> None:
    broken = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lock = LeaderLock(broken, key, ttl=1, identity="lonely")

    assert lock.maintain() is False


def test_ttl_must_be_positive(connection: redis.Redis, key: str) -> None:
    with pytest.raises(ValueError):
        LeaderLock(connection, key, ttl=0)
