"""Bad input on every JSON endpoint: a 4xx in the one error shape, and nothing changes.

The endpoints come from the published OpenAPI document, so a new JSON endpoint
is covered without editing this file. Each gets deep nesting, out-of-range
integers, lone surrogates, NaN/Infinity, invalid UTF-8, an oversized body and
wrong top-level types, with a credential it accepts (or none for sign-in).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from tests.orchestrator.agent_sim import Workspace, bearer, workspace

DEEP = 100_000
BAD_BODIES: dict[str, bytes] = {
    "deep_arrays": b"[" * DEEP + b"]" * DEEP,
    "deep_objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep_but_under_recursion_limit": b'{"agent_name":' + b"[" * 500 + b"]" * 500 + b"}",
    "int_2_64": b'{"agent_name": "agent-1", "name": "x", "offset": 18446744073709551616}',
    "int_huge": b'{"agent_name": "agent-1", "x": 1' + b"0" * 5000 + b"}",
    "lone_surrogate": b'{"agent_name": "\\ud800", "name": "\\udfff", "email": "\\ud83d@x.io"}',
    "surrogate_key": b'{"\\ud800": 1}',
    "nan": b'{"agent_name": "agent-1", "x": NaN}',
    "infinity": b'{"agent_name": "agent-1", "x": -Infinity}',
    "float_overflow": b'{"agent_name": "agent-1", "x": 1e999}',
    "invalid_utf8": b'{"agent_name": "\xed\xa0\x80\xff"}',
    "truncated": b'{"agent_name": ',
    "array": b"[]",
    "string": b'"x"',
    "number": b"1",
    "null": b"null",
}


def json_operations(app: Flask) -> list[tuple[str, str]]:
    """(method, path template) of every operation with a request body."""
    from orchestrator.api import api

    with app.test_request_context():
        paths = api.spec.to_dict()["paths"]
    return [(method, path) for path, ops in paths.items() for method, op in ops.items()
            if isinstance(op, dict) and "requestBody" in op]


@pytest.fixture
def world(app: Flask, client: FlaskClient, make_user: Any, make_api_key: Any) -> dict[str, Any]:
    """A tenant with an agent running a job, a schedule, an integration and a key."""
    ws: Workspace = workspace(client, make_user, make_api_key)
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    schedule = client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 2 * * *"}).json
    integration = client.post("/integrations", headers=ws.headers, json={
        "type": "slack", "name": "ops", "config": {"webhook_url": "https://hooks.slack.com/x"}})
    key = client.post("/auth/api-keys", headers=ws.user["headers"],
                      json={"name": "k", "scope": "agent"}).json
    ids = {"job_id": job_id, "schedule_id": schedule["id"], "key_id": key["id"],
           "integration_id": (integration.json or {}).get("id", "int_missing"),
           "fanout_id": "fan_missing", "name": "agent-1"}
    return {"ws": ws, "sim": sim, "ids": ids}


def credential(path: str, world: dict[str, Any]) -> dict[str, str]:
    if path.startswith(("/agent/", "/register-agent")):
        return bearer(world["sim"].key)
    if path in ("/auth/register", "/auth/verify-email", "/auth/resend-code", "/auth/login",
                "/auth/refresh"):
        return {}
    return world["ws"].user["headers"]


def snapshot() -> dict[str, Any]:
    """Every table's rows (as tuples), minus columns that record mere use of a credential."""
    state: dict[str, Any] = {}
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if c.name not in ("last_used_at",)]
        rows = db.session.execute(sa.select(*columns)).all()
        state[table.name] = sorted(map(repr, rows))
    return state


def assert_one_shape(response: Any, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code,
                                               response.get_data(as_text=True)[:300])
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, (what, body)
    assert set(body["error"]) == {"code", "message", "details"}, (what, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_every_json_endpoint_refuses_bad_bodies_without_changing_anything(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    app.config["RATELIMIT_ENABLED"] = False
    operations = json_operations(app)
    assert len(operations) >= 15, operations
    with app.app_context():
        before = snapshot()
    for method, template in operations:
        path = template.format(**world["ids"])
        headers = {**credential(template, world), "Content-Type": "application/json"}
        for name, body in BAD_BODIES.items():
            response = client.open(path, method=method.upper(), data=body, headers=headers)
            assert_one_shape(response, f"{method} {path} {name}")
        oversized = b'{"x": "' + b"a" * (app.config["MAX_CONTENT_LENGTH"] + 1) + b'"}'
        response = client.open(path, method=method.upper(), data=oversized, headers=headers)
        assert_one_shape(response, f"{method} {path} oversized")
        assert response.status_code == 413
    with app.app_context():
        db.session.expire_all()
        assert snapshot() == before


@pytest.mark.parametrize("extra", [
    {"exit_code": 2**31}, {"exit_code": 2**63 - 1}, {"duration_ms": 2**40},
    {"events": [{"type": "step_started", "seq": 2**40, "id": "s"}]},
    {"stdout": "\ud800"}, {"error": "x" * 20_000}, {"truncated": {"stdout": [1]}},
])
def test_a_refused_result_changes_nothing_and_a_good_one_still_finishes(
        world: dict[str, Any], extra: dict[str, Any]) -> None:
    ws, sim, job_id = world["ws"], world["sim"], world["ids"]["job_id"]
    response = sim.result(job_id, **extra)
    assert_one_shape(response, str(extra))
    assert ws.job(job_id)["status"] == "running"
    assert sim.result(job_id).status_code == 200
    assert ws.job(job_id)["status"] == "success"


@pytest.mark.parametrize("variables", [
    b'{"agent": "agent-1", "run_flow": "health", "variables": {"x": NaN}}',
    b'{"agent": "agent-1", "run_script": "hello.sh", "params": {"name": Infinity}}',
])
def test_nan_and_infinity_are_refused_in_variables_and_params(
        world: dict[str, Any], variables: bytes) -> None:
    ws = world["ws"]
    response = ws.client.post("/trigger-script", data=variables, headers=ws.headers)
    assert_one_shape(response, variables.decode())
    assert response.json["error"]["code"] == "invalid_json"
    assert "finite number" in response.json["error"]["message"]
