"""Small hardening items: empty PATCH, error texts, masked URL credentials, data dir modes,
the OpenAPI error schema and version, /register-agent's ignored api_key."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import __version__, create_app
from orchestrator.extensions import db
from tests.conftest import base_config
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def test_empty_patch_is_refused(ws: Workspace) -> None:
    ws.agent()
    schedule = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 2 * * *"}).json
    response = ws.client.patch(f"/schedules/{schedule['id']}", headers=ws.headers, json={})
    assert response.status_code == 422
    assert "at least one field" in response.json["error"]["message"]


def test_error_texts_say_what_to_fix(ws: Workspace) -> None:
    missing = ws.client.get("/get-scripts", headers=ws.headers)
    assert missing.status_code == 422
    assert missing.json["error"]["message"] == \
        "The query string is not valid: fix agent (see details.fields)."
    broken = ws.client.post("/trigger-script", headers=ws.headers, data=b'{"agent": ')
    assert broken.status_code == 400 and broken.json["error"]["code"] == "invalid_json"
    assert "browser" not in broken.json["error"]["message"]
    assert "not valid JSON" in broken.json["error"]["message"]


def test_register_agent_says_the_body_api_key_was_ignored(ws: Workspace) -> None:
    response = ws.client.post("/register-agent", headers=ws.headers, json={
        "agent_name": "by-hand", "url": "http://10.0.0.5:8001", "api_key": "agent-key-here",
        "tags": []})
    assert response.status_code == 200
    assert response.json["api_key_bound"] is False
    assert "api_key was ignored" in response.json["warning"]


def test_credentials_inside_webhook_urls_are_masked(ws: Workspace) -> None:
    ws.agent()
    job_id = ws.trigger_id(webhook_url="https://user:pa55@hooks.example.com/x?token=s3cr3t")
    shown = ws.job(job_id)["webhook_url"]
    assert shown == "https://***@hooks.example.com/x?token=***"
    listed = ws.client.get("/jobs", headers=ws.headers).get_data(as_text=True)
    assert "pa55" not in listed and "s3cr3t" not in listed


def test_data_dir_is_owner_only(tmp_path: Path, database_url: str, redis_url: str) -> None:
    data_dir = tmp_path / "fresh"
    settings = base_config(database_url, redis_url, data_dir)
    settings.pop("SQLALCHEMY_DATABASE_URI", None)
    app = create_app({**settings, "SQLALCHEMY_DATABASE_URI": None})
    with app.app_context():
        db.engine.connect().close()
        db.engine.dispose()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files


def test_openapi_documents_the_real_error_shape_and_one_version(app: Flask,
                                                                client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    assert spec["info"]["version"] == __version__ == client.get("/health").json["version"]
    error = spec["components"]["schemas"]["ErrorEnvelope"]
    assert error["required"] == ["error"]
    assert set(spec["components"]["schemas"]["ErrorDetail"]["required"]) == {
        "code", "message", "details"}
    trigger = spec["paths"]["/trigger-script"]["post"]["responses"]
    assert {"401", "403", "413", "422"} <= set(trigger)
    assert "429" in spec["paths"]["/auth/login"]["post"]["responses"]
