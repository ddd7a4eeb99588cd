"""One way to reach Redis for every process: a plain URL, or the master Sentinel names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.sentinel import Sentinel

from orchestrator.config import DEFAULT_REDIS_SENTINEL_MASTER

#: Seconds to reach one Redis or Sentinel before trying the next (a dead host must not
#: stall a request for long), and between liveness pings of idle pooled connections.
CONNECT_TIMEOUT = 5.0
SENTINEL_TIMEOUT = 1.0
HEALTH_CHECK_INTERVAL = 30


class RedisConfigError(ValueError):
    """``REDIS_SENTINELS`` is malformed."""


def sentinel_addresses(raw: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` -> ``[(host, port), ...]``; IPv6 as ``[::1]:26379``."""
    addresses = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise RedisConfigError(f"REDIS_SENTINELS: {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        raise RedisConfigError("REDIS_SENTINELS is empty")
    return addresses


def uses_sentinel(config: Mapping[str, Any]) -> bool:
    return bool((config.get("REDIS_SENTINELS") or "").strip())


def master_name(config: Mapping[str, Any]) -> str:
    return config.get("REDIS_SENTINEL_MASTER") or DEFAULT_REDIS_SENTINEL_MASTER


def connect(config: Mapping[str, Any]) -> redis.Redis:
    """The client every process uses (bytes in, bytes out, as RQ needs).

    With ``REDIS_SENTINELS`` the client asks the sentinels for the current
    master of ``REDIS_SENTINEL_MASTER`` whenever it opens a connection, so
    after a failover the next command reconnects to the promoted replica (a
    connection still on a demoted master fails with a connection error and is
    dropped). Otherwise it connects to ``REDIS_URL``.
    """
    options = {"socket_connect_timeout": CONNECT_TIMEOUT,
               "health_check_interval": HEALTH_CHECK_INTERVAL}
    if uses_sentinel(config):
        sentinel = Sentinel(sentinel_addresses(config["REDIS_SENTINELS"]),
                            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT,
                                             "socket_connect_timeout": SENTINEL_TIMEOUT},
                            **options)
        return sentinel.master_for(master_name(config))
    return redis.Redis.from_url(config["REDIS_URL"], **options)


def limiter_storage_uri(config: Mapping[str, Any]) -> str:
    """The ``limits`` library's storage URI for the same Redis (rate limits are shared)."""
    if uses_sentinel(config):
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
                         for h, p in sentinel_addresses(config["REDIS_SENTINELS"]))
        return f"redis+sentinel://{hosts}/{master_name(config)}"
    url = config["REDIS_URL"]
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://"):]
    return url
