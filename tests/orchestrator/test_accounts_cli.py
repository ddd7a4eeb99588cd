"""``scriptmesh users create`` / ``scriptmesh api-keys create`` through Flask's CLI runner."""

from __future__ import annotations

from typing import Any

from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.cli import main

PASSWORD = "a long enough password"


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(main, list(args))


def create_user(app: Flask, email: str = "ops@acme.example", *extra: str) -> dict[str, str]:
    result = run(app, "users", "create", "--email", email, "--password", PASSWORD, *extra)
    assert result.exit_code == 0, result.output
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_users_create_makes_a_verified_user_who_can_log_in(app: Flask,
                                                           client: FlaskClient) -> None:
    ids = create_user(app, "Ops@Acme.example", "--tenant", "Acme Ops", "--admin")
    assert ids["user_id"].startswith("usr_") and ids["tenant_id"].startswith("ten_")
    login = client.post("/auth/login", json={"email": "ops@acme.example", "password": PASSWORD})
    assert login.status_code == 200
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert me.json == {"user_id": ids["user_id"], "email": "ops@acme.example",
                       "tenant_id": ids["tenant_id"], "tenant_name": "Acme Ops",
                       "is_admin": True, "scope": "admin"}


def test_users_create_can_join_an_existing_tenant(app: Flask) -> None:
    first = create_user(app)
    second = create_user(app, "dev@acme.example", "--tenant", first["tenant_id"])
    assert second["tenant_id"] == first["tenant_id"]


def test_users_create_reports_rule_violations(app: Flask) -> None:
    weak = run(app, "users", "create", "--email", "a@b.example", "--password", "short")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    create_user(app)
    duplicate = run(app, "users", "create", "--email", "ops@acme.example",
                    "--password", PASSWORD)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output


def test_api_keys_create_prints_only_the_key_last(app: Flask, client: FlaskClient) -> None:
    create_user(app)
    result = run(app, "api-keys", "create", "--email", "ops@acme.example", "--name", "agent-1",
                 "--scope", "agent", "--expires-days", "30")
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert key.startswith("sm_live_") and " " not in key
    assert result.stdout.count("sm_live_") == 1
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json["scope"] == "agent"


def test_api_keys_create_refuses_unknown_users_and_scopes(app: Flask, make_user: Any) -> None:
    missing = run(app, "api-keys", "create", "--email", "nobody@acme.example", "--name", "x")
    assert missing.exit_code != 0 and "No user" in missing.output
    user = make_user()
    bad_scope = run(app, "api-keys", "create", "--email", user["email"], "--name", "x",
                    "--scope", "root")
    assert bad_scope.exit_code != 0
