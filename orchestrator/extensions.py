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

from orchestrator import redis_connection
from orchestrator.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


class RedisExtension:
    """Holds the app's Redis connection on ``app.extensions``.

    The embedded server (when ``REDIS_URL`` is unset) is started here, so an
    app made by the factory always has a working Redis.
    """

    key = "scriptmesh.redis"

    def init_app(self, app: Flask) -> None:
        embedded = None
        if not app.config.get("REDIS_URL") and not app.config.get("REDIS_SENTINELS"):
            from orchestrator.embedded_redis import start_embedded_redis

            embedded, app.config["REDIS_URL"] = start_embedded_redis(app.config["DATA_DIR"])
        connection = redis_connection.connect(app.config)
        app.extensions[self.key] = {"connection": connection, "embedded": embedded}

    @property
    def connection(self) -> redis.Redis:
        """The current app's Redis connection (bytes in, bytes out, as RQ needs)."""
        return current_app.extensions[self.key]["connection"]


redis_store = RedisExtension()


def limiter_storage_uri(redis_url: str) -> str:
    """Translate a redis-py URL into the ``limits`` library's form."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


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
