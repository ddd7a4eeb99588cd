"""The request guard: body caps, authentication before parsing, hashed rate-limit keys."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import redis_store
from tests.orchestrator.agent_sim import Workspace, bearer, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def assert_error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) == {"code", "message", "details"}
    if code:
        assert response.json["error"]["code"] == code


def test_an_oversized_login_body_is_413_before_it_is_read(client: FlaskClient) -> None:
    body = b'{"email": "' + b"a" * (200 * 1024) + b'@x.example", "password": "x"}'
    response = client.post("/auth/login", data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")
    assert "bytes" in response.json["error"]["message"]


def test_agent_results_may_be_larger_than_small_bodies(ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    assert sim.result(job_id, stdout="x" * (512 * 1024)).status_code == 200


def test_the_global_cap_applies_to_every_endpoint(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    huge = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = sim.post("/agent/jobs/job_x/result", {"agent_name": sim.name, "stdout": huge})
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/trigger-script"), ("post", "/schedules"), ("post", "/auth/api-keys"),
    ("post", "/agent/heartbeat"), ("post", "/register-agent"), ("patch", "/auth/api-keys/k"),
])
def test_unauthenticated_bad_body_is_401_not_422(client: FlaskClient, method: str,
                                                 path: str) -> None:
    response = getattr(client, method)(path, data=b'{"agent": 5, "nope": [')
    assert_error(response, 401)


def test_wrong_scope_is_403_before_the_body_is_looked_at(ws: Workspace) -> None:
    read_key = ws.new_key(ws.user["user_id"], scope="read")
    response = ws.client.post("/trigger-script", data=b"[[[", headers=bearer(read_key))
    assert_error(response, 403, "insufficient_scope")


def test_rate_limit_keys_are_hashed_not_the_raw_email(app: Flask, client: FlaskClient) -> None:
    email = "someone-very-specific@acme.example"
    client.post("/auth/login", json={"email": email, "password": "wrong password!!"})
    with app.app_context():
        keys = [key.decode() for key in redis_store.connection.scan_iter("*")]
    assert keys and not any(email in key for key in keys)
    assert not any(len(key) > 200 for key in keys)


def test_emails_longer_than_254_are_refused(client: FlaskClient) -> None:
    response = client.post("/auth/register", json={"email": "a" * 250 + "@x.example",
                                                   "password": "a long enough password"})
    assert_error(response, 422)
