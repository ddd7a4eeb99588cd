"""Declared script params: the hub refuses undeclared / invalid params at trigger time (422)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace

REPO = Path(__file__).resolve().parents[2]
#: The repo's example manifest as the agent reports it (paths never leave the agent).
DECLARED = {"scripts": [{k: v for k, v in entry.items() if k in ("name", "description", "params")}
                        for entry in json.loads((REPO / "manifests/script_manifest.json")
                                                .read_text())["scripts"]],
            "flows": [], "allow_undeclared_params": False}


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def declared_agent(ws: Workspace, name: str = "agent-1", **extra: Any) -> SimAgent:
    sim = ws.agent(name, register=False)
    response = sim.register(**{"manifest": DECLARED, **extra})
    assert response.status_code == 200, response.json
    return sim


def assert_invalid(response: Any, script: str, param: str) -> None:
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "invalid_params"
    assert error["details"]["script"] == script and error["details"]["param"] == param
    assert f"'{param}'" in error["message"] and f"'{script}'" in error["message"]


@pytest.mark.parametrize(("params", "param"), [
    ({"target": "/b", "TAR_OPTIONS": "--checkpoint-action=exec=sh"}, "TAR_OPTIONS"),
    ({"GIT_SSH_COMMAND": "sh"}, "GIT_SSH_COMMAND"),
    ({"http_proxy": "http://evil:1"}, "http_proxy"),
    ({"target": "/tmp/a b"}, "target"),
    ({"level": 3}, "level"),
    ({"level": "9x"}, "level"),
    ({"compress": "maybe"}, "compress"),
])
def test_trigger_with_bad_params_is_422_naming_param_and_script(
        ws: Workspace, params: dict, param: str) -> None:
    declared_agent(ws)
    assert_invalid(ws.trigger(script="backup.sh", params=params), "backup.sh", param)
    assert ws.client.get("/jobs", headers=ws.headers).json["jobs"] == [], "nothing queued"


def test_missing_required_param_is_422(ws: Workspace) -> None:
    declared_agent(ws)
    assert_invalid(ws.trigger(script="deploy.sh"), "deploy.sh", "version")


def test_valid_declared_params_are_queued_as_text(ws: Workspace) -> None:
    sim = declared_agent(ws)
    job_id = ws.trigger_id(script="backup.sh",
                           params={"target": "/var/backups", "compress": True, "level": 9})
    assert sim.poll_jobs()[0]["params"] == {"target": "/var/backups", "compress": "true",
                                            "level": "9"}
    assert ws.job(job_id)["status"] == "pending"


def test_undeclared_params_pass_only_when_the_agent_allows_them(ws: Workspace) -> None:
    declared_agent(ws, manifest={**DECLARED, "allow_undeclared_params": True})
    assert ws.trigger(script="hello.sh", params={"extra": "x"}).status_code == 202
    assert_invalid(ws.trigger(script="hello.sh", params={"TAR_OPTIONS": "x"}),
                   "hello.sh", "TAR_OPTIONS")


def test_get_scripts_shows_declared_params(ws: Workspace) -> None:
    declared_agent(ws)
    answer = ws.client.get("/get-scripts?agent=agent-1", headers=ws.headers).json
    backup = next(s for s in answer["scripts"] if s["name"] == "backup.sh")
    by_name = {p["name"]: p for p in backup["params"]}
    assert by_name["target"]["pattern"] == "^[A-Za-z0-9_./:-]+$"
    assert by_name["level"]["enum"] == [1, 5, 9] and by_name["level"]["default"] == 5
    assert by_name["compress"]["type"] == "boolean"


def test_fanout_pool_and_schedule_check_params_too(ws: Workspace) -> None:
    declared_agent(ws, "web-1", tags=["web"])
    declared_agent(ws, "web-2", tags=["web"])
    bad = {"run_script": "backup.sh", "params": {"TAR_OPTIONS": "x"}}
    fanout = ws.client.post("/trigger-script", json={"tags": ["web"], **bad}, headers=ws.headers)
    assert_invalid(fanout, "backup.sh", "TAR_OPTIONS")
    pool = ws.client.post("/trigger-script", json={"pool": "web", **bad}, headers=ws.headers)
    assert_invalid(pool, "backup.sh", "TAR_OPTIONS")
    schedule = ws.client.post("/schedules", headers=ws.headers, json={
        "agent": "web-1", "script": "backup.sh", "cron_expression": "0 2 * * *",
        "params": {"TAR_OPTIONS": "x"}})
    assert_invalid(schedule, "backup.sh", "TAR_OPTIONS")
    assert ws.client.get("/schedules", headers=ws.headers).json["schedules"] == []


def test_manifest_with_malformed_declaration_is_refused(ws: Workspace) -> None:
    sim = ws.agent(register=False)
    bad = {"scripts": [{"name": "x.sh", "params": [{"name": "LD_PRELOAD"}]}]}
    response = sim.register(manifest=bad)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_declared_names_is_what_every_agent_listing_the_script_declares() -> None:
    from orchestrator.models import Agent
    from orchestrator.services.params import declared_names

    def agent(params: list[str], allow: bool = False) -> Agent:
        return Agent(name="a", manifest={"allow_undeclared_params": allow, "scripts": [
            {"name": "build.sh", "params": [{"name": n} for n in params]}]})

    assert declared_names([agent(["branch", "sha"]), agent(["branch"])], "build.sh") == {"branch"}
    assert declared_names([agent(["branch"]), agent([], allow=True)], "build.sh") is None
    assert declared_names([agent(["branch"])], "other.sh") == set()
