"""/auth/api-keys: keys shown once, stored hashed, revocable, expiring, scoped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import key_cache
from orchestrator.errors import Forbidden
from orchestrator.extensions import db
from orchestrator.models import ApiKey, Scope, User, utcnow
from orchestrator.services import api_keys

LISTED_FIELDS = {"pools", "id", "key_prefix", "name", "scope", "agent_name", "created_at",
                 "last_used_at", "expires_at", "revoked"}


def key_header(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_create_returns_the_raw_key_once(client: FlaskClient, app: Flask,
                                         make_user: Any) -> None:
    user = make_user()
    response = client.post("/auth/api-keys", headers=user["headers"],
                           data='{"name": "CI Pipeline", "expires_days": 90}')
    assert response.status_code == 201, response.json
    body = response.json
    assert body["id"].startswith("key_")
    assert body["key"].startswith("sm_live_") and len(body["key"]) >= 8 + 43
    assert body["key_prefix"] == body["key"][:12]
    assert body["scope"] == "operator" and body["name"] == "CI Pipeline"
    assert body["warning"] == "Store this key securely. It will not be shown again."
    assert body["expires_at"] and body["created_at"]
    with app.app_context():
        row = db.session.get(ApiKey, body["id"])
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
        assert not any(body["key"] in value for value in stored)
    listed = client.get("/auth/api-keys", headers=user["headers"])
    assert listed.status_code == 200
    assert [set(item) for item in listed.json] == [LISTED_FIELDS]
    assert body["key"] not in listed.get_data(as_text=True)
    one = client.get(f"/auth/api-keys/{body['id']}", headers=user["headers"])
    assert one.json["key_prefix"] == body["key_prefix"] and "key" not in one.json


def test_a_key_authenticates_and_records_its_use(client: FlaskClient, make_user: Any,
                                                 make_api_key: Any) -> None:
    user = make_user()
    raw = make_api_key(user["user_id"], scope="read")
    me = client.get("/auth/me", headers=key_header(raw))
    assert me.status_code == 200
    assert me.json["user_id"] == user["user_id"] and me.json["scope"] == "read"
    listed = client.get("/auth/api-keys", headers=user["headers"]).json
    assert listed[0]["last_used_at"] is not None


def test_revoked_key_is_refused_on_the_next_request(client: FlaskClient, make_user: Any,
                                                    make_api_key: Any) -> None:
    user = make_user()
    raw = make_api_key(user["user_id"])
    assert client.get("/auth/me", headers=key_header(raw)).status_code == 200
    key_id = client.get("/auth/api-keys", headers=user["headers"]).json[0]["id"]
    assert client.delete(f"/auth/api-keys/{key_id}", headers=user["headers"]).status_code == 204
    response = client.get("/auth/me", headers=key_header(raw))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "api_key_revoked"
    listed = client.get("/auth/api-keys", headers=user["headers"]).json
    assert listed[0]["revoked"] is True


def test_expired_key_is_401_saying_it_expired(client: FlaskClient, app: Flask,
                                              make_user: Any, make_api_key: Any) -> None:
    user = make_user()
    raw = make_api_key(user["user_id"], expires_days=1)
    assert client.get("/auth/me", headers=key_header(raw)).status_code == 200
    with app.app_context():
        key = db.session.execute(db.select(ApiKey)).scalar_one()
        key.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert client.get("/auth/me", headers=key_header(raw)).status_code == 200, \
            "served from the key cache: a change behind the services' back is not seen"
        key_cache.bump_epoch({})  # what every service that changes a key does
    response = client.get("/auth/me", headers=key_header(raw))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "api_key_expired"
    assert "expired" in response.json["error"]["message"]


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "scope": "root"}, "scope"),
    ({"name": ""}, "name"),
    ({"name": "x", "expires_days": 0}, "expires_days"),
    ({}, "name"),
])
def test_invalid_key_requests_are_422(client: FlaskClient, make_user: Any, body: dict,
                                      field: str) -> None:
    response = client.post("/auth/api-keys", headers=make_user()["headers"], json=body)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


@pytest.mark.parametrize("scope", ["operator", "read", "agent"])
def test_only_admin_credentials_manage_keys(client: FlaskClient, make_user: Any,
                                            make_api_key: Any, scope: str) -> None:
    user = make_user()
    headers = key_header(make_api_key(user["user_id"], scope=scope))
    create = client.post("/auth/api-keys", headers=headers, json={"name": "x", "scope": "read"})
    assert create.status_code == 403
    assert create.json["error"]["code"] == "insufficient_scope"
    assert client.get("/auth/api-keys", headers=headers).status_code == 403
    # ...while /auth/me answers every scope, agent keys included.
    assert client.get("/auth/me", headers=headers).json["scope"] == scope


def test_admin_key_can_mint_every_scope(client: FlaskClient, make_user: Any,
                                        make_api_key: Any) -> None:
    user = make_user()
    headers = key_header(make_api_key(user["user_id"], scope="admin"))
    for scope in ("admin", "operator", "read", "agent"):
        response = client.post("/auth/api-keys", headers=headers,
                               json={"name": scope, "scope": scope})
        assert response.status_code == 201 and response.json["scope"] == scope


def test_a_key_never_gets_more_than_its_creator(app: Flask, make_user: Any) -> None:
    user = make_user()
    with app.app_context():
        owner = db.session.get(User, user["user_id"])
        with pytest.raises(Forbidden):
            api_keys.create_api_key(owner, "x", scope="admin", creator_scope=Scope.OPERATOR)
        with pytest.raises(Forbidden):
            api_keys.create_api_key(owner, "x", scope="agent", creator_scope=Scope.OPERATOR)
        key, _raw = api_keys.create_api_key(owner, "x", scope="read",
                                            creator_scope=Scope.OPERATOR)
        assert key.scope == "read"


def test_deleting_a_missing_key_is_404(client: FlaskClient, make_user: Any) -> None:
    response = client.delete("/auth/api-keys/key_000000000000000000000000",
                             headers=make_user()["headers"])
    assert response.status_code == 404
    assert response.json["error"]["code"] == "api_key_not_found"


def test_a_revocation_reaches_every_replicas_key_cache_at_once(
        app: Flask, client: FlaskClient, make_user: Any, make_api_key: Any) -> None:
    from orchestrator import create_app

    user = make_user()
    raw = make_api_key(user["user_id"])
    replica = create_app({key: app.config[key] for key in (
        "TESTING", "DATA_DIR", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "SECRET_KEY",
        "JWT_SECRET_KEY", "ENCRYPTION_KEY")}).test_client()
    for hub in (client, replica):  # both replicas now serve the key from memory
        assert hub.get("/auth/me", headers=key_header(raw)).status_code == 200
    (listed,) = client.get("/auth/api-keys", headers=user["headers"]).json
    assert client.delete(f"/auth/api-keys/{listed['id']}",
                         headers=user["headers"]).status_code in (200, 204)
    response = replica.get("/auth/me", headers=key_header(raw))
    assert response.status_code == 401, "the other replica's cache was invalidated"
    assert response.json["error"]["code"] == "api_key_revoked"
