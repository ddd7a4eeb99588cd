"""Rate limits on the public /auth endpoints: per account first, per IP as a backstop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import create_app
from orchestrator.extensions import db
from tests.conftest import base_config

PASSWORD = "a long enough password"


@pytest.fixture
def limited_app(app: Flask, database_url: str, redis_url: str,
                tmp_path: Path) -> Iterator[Flask]:
    """A second app on the same (emptied) database and Redis, with tight limits.

    Per account: 3 a minute; per IP: 5 a minute.
    """
    limited = create_app({**base_config(database_url, redis_url, tmp_path / "limited"),
                          "AUTH_RATE_LIMIT": "3 per minute",
                          "AUTH_IP_RATE_LIMIT": "5 per minute"})
    yield limited
    with limited.app_context():
        db.session.remove()
        db.engine.dispose()


def login(client: FlaskClient, email: str, ip: str = "192.0.2.1") -> Any:
    return client.post("/auth/login", json={"email": email, "password": "wrong password!!"},
                       environ_base={"REMOTE_ADDR": ip})


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert set(response.json["error"]) == {"code", "message", "details"}
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_fourth_login_for_one_account_is_429(limited_app: Flask) -> None:
    client = limited_app.test_client()
    for _ in range(3):
        assert login(client, "alice@acme.example").status_code == 401
    assert_rate_limited(login(client, "alice@acme.example"))
    # Same account, capitals and spaces: the same budget.
    assert_rate_limited(login(client, "  ALICE@acme.example"))
    # Another account from the same IP is not affected by Alice's limit.
    assert login(client, "bob@acme.example").status_code == 401


def test_per_ip_limit_catches_many_accounts(limited_app: Flask) -> None:
    client = limited_app.test_client()
    for n in range(5):
        assert login(client, f"user{n}@acme.example").status_code == 401
    assert_rate_limited(login(client, "user99@acme.example"))
    assert login(client, "user99@acme.example", ip="198.51.100.7").status_code == 401


@pytest.mark.parametrize("path, body", [
    ("/auth/register", {"email": "carol@acme.example", "password": "x"}),
    ("/auth/verify-email", {"email": "carol@acme.example", "code": "123456"}),
    ("/auth/resend-code", {"email": "carol@acme.example"}),
])
def test_other_public_endpoints_are_limited_per_account(limited_app: Flask, path: str,
                                                        body: dict) -> None:
    client = limited_app.test_client()
    statuses = [client.post(path, json=body).status_code for _ in range(3)]
    assert 429 not in statuses
    assert_rate_limited(client.post(path, json=body))


def test_refresh_is_limited_per_user_across_tokens(limited_app: Flask, make_user: Any) -> None:
    from orchestrator.models import User
    from orchestrator.services import accounts

    user = make_user()
    with limited_app.app_context():
        owner = db.session.get(User, user["user_id"])
        tokens = [accounts.issue_tokens(owner)["refresh_token"] for _ in range(4)]
    client = limited_app.test_client()
    for token in tokens[:3]:
        assert client.post("/auth/refresh", json={"refresh_token": token}).status_code == 200
    assert_rate_limited(client.post("/auth/refresh", json={"refresh_token": tokens[3]}))


def test_default_limits_are_loose_enough_for_normal_use(client: FlaskClient,
                                                        app: Flask) -> None:
    assert app.config["AUTH_RATE_LIMIT"] == "20 per minute"
    assert app.config["AUTH_IP_RATE_LIMIT"] == "60 per minute"
    for _ in range(4):
        assert login(client, "dave@acme.example").status_code == 401


def test_trusted_proxies_give_each_client_its_own_bucket(app: Flask, database_url: str,
                                                         redis_url: str, tmp_path: Path) -> None:
    """Behind one load balancer, X-Forwarded-For names the client (TRUSTED_PROXIES=1);
    without the setting the header is ignored (a client cannot pick its bucket)."""
    settings = {**base_config(database_url, redis_url, tmp_path / "proxied"),
                "AUTH_RATE_LIMIT": "100 per minute", "AUTH_IP_RATE_LIMIT": "2 per minute"}
    for proxies, expected in ((1, 401), (0, 429)):
        proxied = create_app({**settings, "TRUSTED_PROXIES": proxies})
        client = proxied.test_client()
        for index in range(3):
            response = client.post(
                "/auth/login", json={"email": f"p{proxies}-{index}@x.example",
                                     "password": "wrong password!!"},
                headers={"X-Forwarded-For": f"203.0.113.{10 * proxies + index}"},
                environ_base={"REMOTE_ADDR": f"10.0.0.{proxies + 1}"})
        assert response.status_code == expected, (proxies, response.json)
        with proxied.app_context():
            db.session.remove()
            db.engine.dispose()
