"""``redis.get``, ``redis.set``, ``redis.del``, ``redis.exists`` against a Redis URL.

The URL carries password and database (``redis://:secret@host:6379/2``,
``unix:///path/redis.sock?db=2``); a connection is opened per step and closed after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

try:  # an optional driver: pip install 'scriptmesh[agent-redis]'
    import redis
except ImportError:  # pragma: no cover - exercised on light agent installs
    redis = None

from agent.flows import targets
from agent.flows.context import ActionContext, ActionSpec
from agent.flows.durations import optional_duration
from agent.flows.errors import StepFailed

DEFAULT_SOCKET_TIMEOUT = 10.0


EXTRA: dict[tuple[str, ...], dict[str, Any]] = {
    ("key",): {"parse_json": {"type": ["boolean", "string"]}},
    ("key", "value"): {"value": {}, "ttl": {"type": ["number", "string"]},
                       "only_if_absent": {"type": ["boolean", "string"]}},
}


def _schema(*required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "required": ["url", *required],
        "properties": {"url": {"type": "string", "minLength": 1}, "key": {"type": "string"},
                       "keys": {"type": ["array", "string"]}, **EXTRA.get(required, {})},
    }
    if "key" not in required:
        schema["anyOf"] = [{"required": ["key"]}, {"required": ["keys"]}]
    return schema


def _client(config: dict[str, Any], ctx: ActionContext) -> redis.Redis:
    if redis is None:
        raise StepFailed("redis steps need the redis package on the agent: "
                         "pip install 'scriptmesh[agent-redis]'")
    url = str(config["url"])
    targets.check_dsn_host(None if url.startswith("unix:") else urlsplit(url).hostname, "redis")
    left = ctx.remaining()
    timeout = DEFAULT_SOCKET_TIMEOUT if left is None else max(min(left, 10.0), 0.05)
    return redis.Redis.from_url(
        str(config["url"]), decode_responses=True, socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def _with_client(operation: Callable[[redis.Redis, dict[str, Any]], dict[str, Any]]) -> Any:
    def run(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = _client(config, ctx)
        try:
            return operation(client, config)
        except redis.RedisError as exc:  # redis is present: _client checked
            raise StepFailed(f"redis error: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()

    run.__doc__ = operation.__doc__
    return run


def _keys(config: dict[str, Any]) -> list[str]:
    keys = config.get("keys", config.get("key"))
    return [str(key) for key in (keys if isinstance(keys, list) else [keys])]


def redis_get(client: redis.Redis, config: dict[str, Any]) -> dict[str, Any]:
    """``{value, exists}``; with ``parse_json: true`` the value is decoded from JSON."""
    value = client.get(str(config["key"]))
    if value is not None and config.get("parse_json"):
        try:
            value = json.loads(value)
        except ValueError:
            raise StepFailed(f"redis.get: value of {config['key']!r} is not JSON") from None
    return {"value": value, "exists": value is not None}


def redis_set(client: redis.Redis, config: dict[str, Any]) -> dict[str, Any]:
    """Set ``key`` to ``value`` (non-strings stored as JSON), optionally with a ``ttl``."""
    value = config["value"]
    text = value if isinstance(value, str) else json.dumps(value)
    ttl = optional_duration(config.get("ttl"), "config.ttl")
    px = max(int(ttl * 1000), 1) if ttl else None
    ok = client.set(str(config["key"]), text, px=px, nx=bool(config.get("only_if_absent")))
    return {"ok": bool(ok)}


def redis_del(client: redis.Redis, config: dict[str, Any]) -> dict[str, Any]:
    """Delete ``key`` (or ``keys``); ``deleted`` counts the keys that existed."""
    return {"deleted": int(client.delete(*_keys(config)))}


def redis_exists(client: redis.Redis, config: dict[str, Any]) -> dict[str, Any]:
    """``exists`` (all keys exist) and ``count`` (how many do)."""
    keys = _keys(config)
    count = int(client.exists(*keys))
    return {"exists": count == len(keys), "count": count}


ACTIONS = {
    "redis.get": ActionSpec(_with_client(redis_get), config_schema=_schema("key"),
                            result_keys=("value", "exists"),
                            example={"url": "${REDIS_URL}", "key": "session:1",
                                     "parse_json": True}),
    "redis.set": ActionSpec(_with_client(redis_set), config_schema=_schema("key", "value"),
                            result_keys=("ok",),
                            example={"url": "${REDIS_URL}", "key": "session:1",
                                     "value": {"user": "alice"}, "ttl": "60s"}),
    "redis.del": ActionSpec(_with_client(redis_del), config_schema=_schema(),
                            result_keys=("deleted",),
                            example={"url": "${REDIS_URL}", "keys": ["a", "b"]}),
    "redis.exists": ActionSpec(_with_client(redis_exists), config_schema=_schema(),
                               result_keys=("exists", "count"),
                               example={"url": "${REDIS_URL}", "key": "session:1"}),
}
