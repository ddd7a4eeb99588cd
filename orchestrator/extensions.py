"""Flask extensions, created unbound here and bound in ``create_app``.

One object of each serves every app the factory builds (tests make many), and
modules import them from here without import cycles.
"""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession

from orchestrator import redis_connection
from orchestrator.models.base import Base

#: ``app.extensions`` key of the outbox registry, and the session key of what a
#: transaction emitted (``orchestrator.services.outbox``).
OUTBOX_KEY = "scriptmesh.outbox"
OUTBOX_PENDING_KEY = "scriptmesh.outbox.pending"


class OutboxSession(FlaskSession):
    """``db.session``'s class: after each commit, the app's outbox carries out what the
    transaction emitted; a rollback forgets it."""

    def commit(self) -> None:
        super().commit()
        pending = self.info.pop(OUTBOX_PENDING_KEY, None)
        if pending:
            current_app.extensions[OUTBOX_KEY].after_commit(self, pending)

    def rollback(self) -> None:
        self.info.pop(OUTBOX_PENDING_KEY, None)
        super().rollback()

    def close(self) -> None:
        self.info.pop(OUTBOX_PENDING_KEY, None)
        super().close()


db = SQLAlchemy(model_class=Base, session_options={"class_": OutboxSession})
migrate = Migrate()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


class RedisExtension:
    """Holds the app's Redis connection on ``app.extensions``.

    Building an app never starts a server: without ``REDIS_URL`` the app
    connects to its data dir's embedded server (``unix://<data dir>/redis.sock``,
    owned by ``scriptmesh dev``), lazily, on first use; a failed connect says
    how to start it.
    """

    key = "scriptmesh.redis"

    def init_app(self, app: Flask) -> None:
        from orchestrator.embedded_redis import embedded_redis_url, friendly_connection_errors

        embedded = not app.config.get("REDIS_URL") and not app.config.get("REDIS_SENTINELS")
        if embedded:
            app.config["REDIS_URL"] = embedded_redis_url(app.config["DATA_DIR"])
        connection = redis_connection.connect(app.config)
        if embedded:
            friendly_connection_errors(connection, app.config["DATA_DIR"])
        app.extensions[self.key] = {"connection": connection}

    @property
    def connection(self) -> redis.Redis:
        """The current app's Redis connection (bytes in, bytes out, as RQ needs)."""
        return current_app.extensions[self.key]["connection"]


redis_store = RedisExtension()


def init_extensions(app: Flask) -> None:
    """Bind every extension to ``app`` in dependency order."""
    from orchestrator.api import api

    redis_store.init_app(app)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _tune_sqlite)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True,
                     compare_type=True)
    jwt.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_connection.limiter_storage_uri(app.config))
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "scriptmesh-rl")
    limiter.init_app(app)
    api.init_app(app)


def engine_options(config: Any) -> dict[str, Any]:
    """The connection pool's size, overflow and timeout (``DATABASE_POOL_*``).

    An in-memory SQLite database has a single shared connection and no pool to size.
    """
    url = str(config["SQLALCHEMY_DATABASE_URI"])
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        return {}
    options = {"pool_size": config.get("DATABASE_POOL_SIZE"),
               "max_overflow": config.get("DATABASE_MAX_OVERFLOW"),
               "pool_timeout": config.get("DATABASE_POOL_TIMEOUT")}
    return {name: value for name, value in options.items() if value is not None}


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL and a busy timeout let the hub, workers and agents share one SQLite file.

    ``synchronous=NORMAL`` is safe from corruption under WAL and skips an fsync
    per commit (1.5 ms here, five commits a job, blocking a gevent worker); a
    power cut may lose the last commits. Production runs on PostgreSQL.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _migrations_dir() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent / "migrations"
