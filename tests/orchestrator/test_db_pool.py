"""The database connection pool is sized from ``DATABASE_POOL_*`` (a gevent worker's knob)."""

from __future__ import annotations

from pathlib import Path

from orchestrator import create_app
from orchestrator.extensions import db, engine_options
from tests.conftest import base_config


def test_pool_size_overflow_and_timeout_come_from_the_environment(
        monkeypatch: object, database_url: str, redis_url: str, tmp_path: Path) -> None:
    for name, value in (("DATABASE_POOL_SIZE", "7"), ("DATABASE_MAX_OVERFLOW", "3"),
                        ("DATABASE_POOL_TIMEOUT", "45")):
        monkeypatch.setenv(name, value)  # type: ignore[attr-defined]
    app = create_app(base_config(database_url, redis_url, tmp_path / "data"))
    with app.app_context():
        pool = db.engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 3, 45.0)
        db.engine.dispose()


def test_defaults_and_in_memory_sqlite() -> None:
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://h/db",
                           "DATABASE_POOL_SIZE": 5, "DATABASE_MAX_OVERFLOW": 10,
                           "DATABASE_POOL_TIMEOUT": 30.0}) == {
        "pool_size": 5, "max_overflow": 10, "pool_timeout": 30.0}
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite://",
                           "DATABASE_POOL_SIZE": 5}) == {}
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite:///:memory:"}) == {}
