"""/auth: sign-up, email verification, login, refresh rotation, logout, /auth/me."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token, create_refresh_token

from orchestrator.extensions import db
from orchestrator.models import EmailCode, User

PASSWORD = "a long enough password"


def register(client: FlaskClient, email: str = "alice@acme.example", **extra: Any) -> Any:
    return client.post("/auth/register", json={"email": email, "password": PASSWORD, **extra})


def login(client: FlaskClient, email: str = "alice@acme.example",
          password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"email": email, "password": password})


def signed_up(client: FlaskClient, mailed_code: Any, email: str = "alice@acme.example") -> dict:
    """Register, verify and log in; the token pair."""
    assert register(client, email).status_code == 201
    verified = client.post("/auth/verify-email", json={"email": email, "code": mailed_code(email)})
    assert verified.status_code == 200, verified.json
    response = login(client, email)
    assert response.status_code == 200, response.json
    return response.json


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.json
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) == {"code", "message", "details"}
    assert response.json["error"]["code"] == code, response.json
    return response.json["error"]


# -- registration ------------------------------------------------------------------------

def test_register_creates_tenant_and_unverified_owner(client: FlaskClient, app: Flask) -> None:
    # curl -d without a JSON content type, email with spaces and capitals.
    response = client.post("/auth/register",
                           data=json.dumps({"email": "  Alice@Acme.Example ",
                                            "password": PASSWORD}))
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"email", "email_verified", "message"}, "no ids: no enumeration"
    assert body["email"] == "alice@acme.example"
    assert body["email_verified"] is False
    assert "verify-email" in body["message"]
    me = client.get("/auth/me")  # sanity: no credential, no answer
    assert me.status_code == 401
    with app.app_context():
        user = db.session.execute(db.select(User).where(
            User.email == "alice@acme.example").execution_options(all_tenants=True)).scalar_one()
        assert user.tenant_id.startswith("ten_") and user.email_verified_at is None
        assert user.password_hash.startswith("$2") and PASSWORD not in user.password_hash


@pytest.mark.parametrize("email, tenant_name, expected", [
    ("bob@bigcorp.example", None, "bigcorp.example"),
    ("carol.smith@gmail.com", None, "carol.smith"),
    ("dave@bigcorp.example", "  Platform Team ", "Platform Team"),
])
def test_tenant_name_defaults_to_domain_or_local_part(
        client: FlaskClient, mailed_code: Any, email: str, tenant_name: str | None,
        expected: str) -> None:
    extra = {"tenant_name": tenant_name} if tenant_name else {}
    assert register(client, email, **extra).status_code == 201
    client.post("/auth/verify-email", json={"email": email, "code": mailed_code(email)})
    me = client.get("/auth/me", headers=bearer(login(client, email).json["access_token"]))
    assert me.json["tenant_name"] == expected


@pytest.mark.parametrize("password, fragment", [
    ("short", "at least 12"),
    ("Alice@Acme.Example", "same as the email"),
])
def test_weak_passwords_are_422_naming_the_field(client: FlaskClient, password: str,
                                                 fragment: str) -> None:
    response = client.post("/auth/register",
                           json={"email": "alice@acme.example", "password": password})
    error = assert_error(response, 422, "validation_error")
    assert fragment in " ".join(error["details"]["fields"]["password"])


def test_register_answers_the_same_for_new_pending_and_taken_emails(
        client: FlaskClient, mailed_code: Any) -> None:
    first = register(client)
    again = register(client, "ALICE@acme.example")  # pending: a new code
    assert first.status_code == again.status_code == 201 and first.json == again.json
    client.post("/auth/verify-email", json={"email": "alice@acme.example",
                                            "code": mailed_code("alice@acme.example")})
    taken = register(client, "alice@acme.example")
    assert taken.status_code == 201 and taken.json == first.json


def test_a_pending_signup_cannot_be_squatted(client: FlaskClient, mailed_code: Any) -> None:
    """The last sign-up's password wins once the mailbox owner verifies."""
    client.post("/auth/register", json={"email": "bo@acme.example",
                                        "password": "squatter password 1"})
    register(client, "bo@acme.example")
    client.post("/auth/verify-email", json={"email": "bo@acme.example",
                                            "code": mailed_code("bo@acme.example")})
    assert login(client, "bo@acme.example").status_code == 200
    assert login(client, "bo@acme.example", "squatter password 1").status_code == 401


def test_unverified_signups_expire(client: FlaskClient, app: Flask) -> None:
    from datetime import timedelta as delta

    from orchestrator.models import utcnow
    from orchestrator.services import signup

    register(client, "old@acme.example")
    with app.app_context():
        assert signup.expire_unverified_signups(utcnow() + delta(days=8)) == 1
        assert db.session.execute(db.select(User).where(User.email == "old@acme.example")
                                  .execution_options(all_tenants=True)).first() is None


def test_password_reset_by_mailed_code(client: FlaskClient, mailed_code: Any) -> None:
    tokens = signed_up(client, mailed_code)
    assert client.post("/auth/password-reset",
                       json={"email": "nobody@acme.example"}).status_code == 202
    assert client.post("/auth/password-reset",
                       json={"email": "alice@acme.example"}).status_code == 202
    code = mailed_code("alice@acme.example")
    wrong = client.post("/auth/password-reset/confirm", json={
        "email": "alice@acme.example", "code": "000000x", "password": "a new long password"})
    assert_error(wrong, 400, "invalid_code")
    done = client.post("/auth/password-reset/confirm", json={
        "email": "alice@acme.example", "code": code, "password": "a new long password"})
    assert done.status_code == 200, done.json
    assert login(client, "alice@acme.example", "a new long password").status_code == 200
    assert login(client).status_code == 401
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
                 401, "token_revoked")


def test_validation_errors_list_every_field(client: FlaskClient) -> None:
    response = client.post("/auth/register", json={"email": "not-an-email"})
    error = assert_error(response, 422, "validation_error")
    assert set(error["details"]["fields"]) == {"email", "password"}


def test_malformed_json_is_400_in_our_shape(client: FlaskClient) -> None:
    response = client.post("/auth/login", data='{"email": "x@y.example", ',
                           content_type="application/json")
    assert "not valid JSON" in assert_error(response, 400, "invalid_json")["message"]


# -- email verification ------------------------------------------------------------------

def test_login_before_verification_is_403(client: FlaskClient) -> None:
    register(client)
    error = assert_error(login(client), 403, "email_not_verified")
    assert "not verified" in error["message"]


def test_code_is_single_use(client: FlaskClient, mailed_code: Any) -> None:
    register(client)
    code = mailed_code("alice@acme.example")
    payload = {"email": "alice@acme.example", "code": code}
    first = client.post("/auth/verify-email", json=payload)
    assert first.status_code == 200 and first.json["email_verified"] is True
    assert_error(client.post("/auth/verify-email", json=payload), 400, "invalid_code")


def test_five_wrong_codes_void_the_code(client: FlaskClient, mailed_code: Any) -> None:
    register(client)
    code = mailed_code("alice@acme.example")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = client.post("/auth/verify-email",
                               json={"email": "alice@acme.example", "code": wrong})
        assert_error(response, 400, "invalid_code")
    error = assert_error(client.post("/auth/verify-email",
                                     json={"email": "alice@acme.example", "code": code}),
                         400, "invalid_code")
    assert "/auth/resend-code" in error["message"]
    assert_error(login(client), 403, "email_not_verified")


def test_resend_voids_old_codes_and_mails_a_new_one(client: FlaskClient,
                                                    mailed_code: Any) -> None:
    register(client)
    old = mailed_code("alice@acme.example")
    response = client.post("/auth/resend-code", json={"email": "alice@acme.example"})
    assert response.status_code == 202
    new = mailed_code("alice@acme.example")
    if old != new:  # one chance in a million that they coincide
        assert_error(client.post("/auth/verify-email",
                                 json={"email": "alice@acme.example", "code": old}),
                     400, "invalid_code")
    ok = client.post("/auth/verify-email", json={"email": "alice@acme.example", "code": new})
    assert ok.status_code == 200


def test_expired_code_is_refused(client: FlaskClient, app: Flask, mailed_code: Any) -> None:
    register(client)
    code = mailed_code("alice@acme.example")
    with app.app_context():
        record = db.session.execute(db.select(EmailCode)).scalar_one()
        record.expires_at -= timedelta(minutes=16)
        db.session.commit()
    assert_error(client.post("/auth/verify-email",
                             json={"email": "alice@acme.example", "code": code}),
                 400, "invalid_code")


def test_unknown_emails_are_not_revealed(client: FlaskClient, app: Flask) -> None:
    register(client)
    unknown = client.post("/auth/verify-email",
                          json={"email": "nobody@acme.example", "code": "123456"})
    known = client.post("/auth/verify-email",
                        json={"email": "alice@acme.example", "code": "zzzzzz"})
    assert unknown.status_code == known.status_code == 400
    assert unknown.json == known.json
    resend = client.post("/auth/resend-code", json={"email": "nobody@acme.example"})
    assert resend.status_code == 202
    assert resend.json == client.post("/auth/resend-code",
                                      json={"email": "alice@acme.example"}).json


# -- login, refresh, logout --------------------------------------------------------------

def test_login_returns_a_bearer_pair(client: FlaskClient, mailed_code: Any) -> None:
    tokens = signed_up(client, mailed_code)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    me = client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json["email"] == "alice@acme.example"
    assert me.json["scope"] == "admin" and me.json["is_admin"] is False
    assert me.json["tenant_id"].startswith("ten_")


@pytest.mark.parametrize("email, password", [
    ("alice@acme.example", "the wrong password!"),
    ("nobody@acme.example", PASSWORD),
])
def test_bad_credentials_are_one_generic_401(client: FlaskClient, mailed_code: Any,
                                             email: str, password: str) -> None:
    signed_up(client, mailed_code)
    error = assert_error(login(client, email, password), 401, "invalid_credentials")
    assert error["message"] == "Invalid email or password."


def test_refresh_rotates_and_reuse_revokes_the_family(client: FlaskClient,
                                                      mailed_code: Any) -> None:
    first = signed_up(client, mailed_code)["refresh_token"]
    second = client.post("/auth/refresh", json={"refresh_token": first})
    assert second.status_code == 200
    assert second.json["refresh_token"] != first
    assert client.get("/auth/me", headers=bearer(second.json["access_token"])).status_code == 200
    # A thief replays the first token: refused, and the legitimate newer token dies too.
    assert_error(client.post("/auth/refresh", json={"refresh_token": first}),
                 401, "refresh_token_reused")
    assert_error(client.post("/auth/refresh", json={"refresh_token": second.json["refresh_token"]}),
                 401, "token_revoked")


def test_other_sessions_survive_a_reuse(client: FlaskClient, mailed_code: Any) -> None:
    stolen = signed_up(client, mailed_code)["refresh_token"]
    other_session = login(client).json["refresh_token"]
    client.post("/auth/refresh", json={"refresh_token": stolen})
    client.post("/auth/refresh", json={"refresh_token": stolen})
    assert client.post("/auth/refresh", json={"refresh_token": other_session}).status_code == 200


def test_expired_and_malformed_refresh_tokens_are_401(client: FlaskClient, app: Flask,
                                                      make_user: Any) -> None:
    user = make_user()
    with app.app_context():
        expired = create_refresh_token(identity=user["user_id"],
                                       expires_delta=timedelta(seconds=-1))
        access = create_access_token(identity=user["user_id"])
    assert_error(client.post("/auth/refresh", json={"refresh_token": expired}),
                 401, "token_expired")
    assert_error(client.post("/auth/refresh", json={"refresh_token": "not.a.jwt"}),
                 401, "invalid_token")
    assert_error(client.post("/auth/refresh", json={"refresh_token": access}),
                 401, "invalid_token")


def test_logout_revokes_access_token_and_session(client: FlaskClient, mailed_code: Any) -> None:
    tokens = signed_up(client, mailed_code)
    headers = bearer(tokens["access_token"])
    response = client.post("/auth/logout", headers=headers)
    assert response.status_code == 204
    assert_error(client.get("/auth/me", headers=headers), 401, "token_revoked")
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
                 401, "token_revoked")


def test_logout_survives_a_redis_flush(client: FlaskClient, app: Flask,
                                       mailed_code: Any) -> None:
    """Revocations live in the database; Redis is only their cache."""
    from orchestrator.extensions import redis_store

    tokens = signed_up(client, mailed_code)
    headers = bearer(tokens["access_token"])
    assert client.post("/auth/logout", headers=headers).status_code == 204
    with app.app_context():
        redis_store.connection.flushdb()
    assert_error(client.get("/auth/me", headers=headers), 401, "token_revoked")
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
                 401, "token_revoked")


def test_logout_with_another_sessions_refresh_token_ends_it_too(client: FlaskClient,
                                                                 mailed_code: Any) -> None:
    tokens = signed_up(client, mailed_code)
    other = login(client).json
    response = client.post("/auth/logout", headers=bearer(tokens["access_token"]),
                           json={"refresh_token": other["refresh_token"]})
    assert response.status_code == 204
    assert_error(client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}),
                 401, "token_revoked")


# -- bearer token checks -----------------------------------------------------------------

def test_expired_access_token_says_so(client: FlaskClient, app: Flask, make_user: Any) -> None:
    user = make_user()
    with app.app_context():
        token = create_access_token(identity=user["user_id"], expires_delta=timedelta(seconds=-1))
    error = assert_error(client.get("/auth/me", headers=bearer(token)), 401, "token_expired")
    assert "expired" in error["message"]


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Basic abc", "Bearer sm_live_nope"])
def test_missing_or_malformed_credentials_are_401(client: FlaskClient,
                                                  header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert set(response.json["error"]) == {"code", "message", "details"}


def test_refresh_token_is_not_an_access_token(client: FlaskClient, mailed_code: Any) -> None:
    tokens = signed_up(client, mailed_code)
    assert_error(client.get("/auth/me", headers=bearer(tokens["refresh_token"])),
                 401, "invalid_token")


def test_protected_endpoints_are_documented_with_bearer_auth(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").json["paths"]
    assert paths["/auth/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert paths["/auth/api-keys"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/auth/login"]["post"]


def test_logout_with_an_api_key_is_400(client: FlaskClient, make_user: Any,
                                       make_api_key: Any) -> None:
    raw = make_api_key(make_user()["user_id"])
    error = assert_error(client.post("/auth/logout", headers=bearer(raw)), 400, "not_a_session")
    assert "DELETE /auth/api-keys" in error["message"]
    assert client.get("/auth/me", headers=bearer(raw)).status_code == 200
