"""Reachability checks for /health."""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa

from orchestrator import __version__
from orchestrator.extensions import db, redis_store

log = logging.getLogger(__name__)


def check() -> dict[str, str]:
    """Probe the database and Redis; ``status`` is "ok" only when both answer."""
    database = redis_state = "ok"
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("health: database unreachable: %s", type(exc).__name__)
        db.session.rollback()
        database = "unreachable"
    try:
        redis_store.connection.ping()
    except (redis.RedisError, OSError) as exc:
        log.warning("health: redis unreachable: %s", type(exc).__name__)
        redis_state = "unreachable"
    status = "ok" if database == redis_state == "ok" else "degraded"
    return {"status": status, "version": __version__, "database": database, "redis": redis_state}
