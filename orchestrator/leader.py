"""A Redis leader lock: among several processes, exactly one holds it at a time.

The lock is one key set with ``SET key value NX PX ttl``; its holder renews it
every ``ttl / 3`` with a compare-and-set script and releases it with a
compare-and-delete script, so a process can only ever extend or delete its own
lock. A holder that cannot renew in time (Redis unreachable, process paused)
stops counting itself leader when its local deadline passes, which is never
later than the moment the key expires in Redis: two processes never both
believe they lead (clock drift between machines aside, which a TTL of seconds
absorbs).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import redis

log = logging.getLogger(__name__)

DEFAULT_LEADER_TTL = 15.0

#: Extend the key's expiry only if it still holds our identity.
RENEW_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

#: Delete the key only if it still holds our identity.
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def default_identity() -> str:
    """``host:pid:random``: unique per process start, readable in ``redis-cli GET``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLock:
    """One process's handle on the leader key ``name``.

    :param connection: the Redis holding the key.
    :param name: the key; processes competing for one role use the same name.
    :param ttl: seconds the key lives without renewal; a crashed leader is
        replaced after at most this long.
    """

    def __init__(self, connection: redis.Redis, name: str, ttl: float = DEFAULT_LEADER_TTL,
                 identity: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.connection = connection
        self.name = name
        self.ttl = ttl
        self.identity = identity or default_identity()
        self._valid_until = 0.0
        self._renew = connection.register_script(RENEW_SCRIPT)
        self._release = connection.register_script(RELEASE_SCRIPT)

    @property
    def renew_interval(self) -> float:
        """How often the holder renews (and a follower retries): a third of the TTL."""
        return self.ttl / 3

    @property
    def held(self) -> bool:
        """True while this process may act as leader (its last renewal has not run out)."""
        return time.monotonic() < self._valid_until

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when we now hold it."""
        started = time.monotonic()
        acquired = self.connection.set(self.name, self.identity, nx=True, px=self._ttl_ms)
        if acquired:
            self._valid_until = started + self.ttl
        return bool(acquired)

    def renew(self) -> bool:
        """Extend our lock; False (and no longer held) when the key is not ours any more."""
        started = time.monotonic()
        renewed = self._renew(keys=[self.name], args=[self.identity, self._ttl_ms])
        self._valid_until = started + self.ttl if renewed else 0.0
        return bool(renewed)

    def release(self) -> bool:
        """Give the lock up so a follower takes over at once; True if we held it."""
        self._valid_until = 0.0
        return bool(self._release(keys=[self.name], args=[self.identity]))

    def maintain(self) -> bool:
        """One election round: renew our lock or try to take a free one; log any change.

        Redis errors are logged, not raised: a leader keeps its role until its
        local deadline passes, a follower simply tries again next round.
        """
        was_leader = self.held
        try:
            self.renew() or self.acquire()
        except redis.RedisError as exc:
            log.warning("leader lock %s: Redis error (%s); retrying", self.name, exc)
        now_leader = self.held
        if now_leader and not was_leader:
            log.info("leader lock %s: %s is now the leader", self.name, self.identity)
        elif was_leader and not now_leader:
            log.warning("leader lock %s: %s lost leadership", self.name, self.identity)
        return now_leader

    def holder(self) -> str | None:
        """Who holds the lock now, as stored in Redis (for logs and tests)."""
        value = self.connection.get(self.name)
        return value.decode() if isinstance(value, bytes) else value

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))
