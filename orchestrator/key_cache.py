"""A short-lived cache of authenticated API keys, checked against a shared revocation epoch.

Agents authenticate every poll, heartbeat and upload; without this each of
those requests costs a database round trip for the key. An entry lives
``API_KEY_CACHE_SECONDS`` and is used only while the Redis epoch it was read
under is still current. Any change to a key (revoked, bound to an agent name)
bumps the epoch once its transaction commits (``invalidate_api_keys``), so
every replica reads the database again on its very next request: a revoked key
gets 401 at once everywhere. Without Redis nothing is served from the cache.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis
from flask import Flask, current_app

from orchestrator.extensions import redis_store

EXTENSION_KEY = "scriptmesh.key_cache"
EPOCH_KEY = "scriptmesh:api-keys:epoch"
API_KEYS_CHANGED = "api_keys.changed"
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CachedKey:
    """What authenticating a key found, and under which epoch."""

    principal: Any
    expires_at: datetime | None
    last_used_at: datetime | None
    epoch: bytes
    cached_at: float


class KeyCache:
    """Entries by key hash, oldest evicted first."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: OrderedDict[str, CachedKey] = OrderedDict()

    def get(self, key_hash: str, epoch: bytes | None) -> CachedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or epoch is None:
            return None
        if entry.epoch != epoch or time.monotonic() - entry.cached_at > self.ttl:
            self._entries.pop(key_hash, None)
            return None
        return entry

    def put(self, key_hash: str, entry: CachedKey) -> None:
        if self.ttl <= 0:
            return
        self._entries[key_hash] = entry
        self._entries.move_to_end(key_hash)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def touched(self, key_hash: str, last_used_at: datetime) -> None:
        entry = self._entries.get(key_hash)
        if entry is not None:
            self._entries[key_hash] = replace(entry, last_used_at=last_used_at)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = KeyCache(float(app.config["API_KEY_CACHE_SECONDS"]))


def key_cache() -> KeyCache:
    return current_app.extensions[EXTENSION_KEY]


def current_epoch() -> bytes | None:
    """The shared epoch; None when Redis cannot say.

    A missing epoch (a new or flushed Redis) is replaced by a random one, never
    a value an older entry could have been cached under.
    """
    connection = redis_store.connection
    try:
        epoch = connection.get(EPOCH_KEY)
        if epoch is None:
            connection.set(EPOCH_KEY, secrets.token_hex(8).encode(), nx=True)
            epoch = connection.get(EPOCH_KEY)
    except redis.RedisError:
        return None
    return epoch


def bump_epoch(_payload: dict[str, Any], _attempt: int = 1) -> None:
    """``api_keys.changed`` subscriber: every replica's cached keys are stale from now."""
    redis_store.connection.set(EPOCH_KEY, secrets.token_hex(8).encode())


def fresh_entry(principal: Any, expires_at: datetime | None, last_used_at: datetime | None,
                epoch: bytes | None) -> CachedKey | None:
    if epoch is None:
        return None
    return CachedKey(principal, expires_at, last_used_at, epoch, time.monotonic())
