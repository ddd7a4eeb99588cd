"""AI providers: integrations, /test, the resolution chain, diagnosis with redaction.

Every provider call goes over real HTTP to a local stub speaking that
provider's documented format; background work runs in a real RQ worker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api_stubs import DIAGNOSIS_JSON, ApiStub, anthropic_stub, ollama_stub, openai_stub
from tests.orchestrator.agent_sim import Workspace, workspace
from tests.orchestrator.receiver import run_background_jobs

STUBS = {"openai": openai_stub, "anthropic": anthropic_stub, "ollama": ollama_stub}
KEYS = {"openai": "sk-proj-abcdefghijklmnop1234", "anthropic": "sk-ant-api03-abcdefghijkl9876",
        "ollama": None}


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def base_url(provider: str, stub: ApiStub) -> str:
    return stub.url + "/v1" if provider == "openai" else stub.url


def add_ai(client: FlaskClient, headers: dict[str, str], provider: str, stub: ApiStub,
           path: str = "/integrations", model: str | None = None, **config: Any
           ) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "ai_provider", "provider": provider,
                            "name": f"team {provider}",
                            "config": {"model": model or f"{provider}-model",
                                       "base_url": base_url(provider, stub), **config}}
    if KEYS[provider]:
        body["secrets"] = {"api_key": KEYS[provider]}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_test_call_speaks_each_providers_api_and_is_recorded(
        client: FlaskClient, ws: Workspace, provider: str) -> None:
    headers = ws.user["headers"]
    with STUBS[provider]() as stub:
        created = add_ai(client, headers, provider, stub, temperature=0.2)
        assert created["provider"] == provider
        assert created["secrets"] == ({"api_key": "configured"} if KEYS[provider] else {})
        assert KEYS[provider] is None or KEYS[provider] not in json.dumps(created)
        response = client.post(f"/integrations/{created['id']}/test", headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "ok" and response.json["error"] is None
    assert response.json["integration"]["last_test_status"] == "ok"
    assert response.json["integration"]["last_test_at"]
    [call] = stub.calls
    sent = call.json
    assert sent["model"] == f"{provider}-model"
    assert call.headers["Content-Type"] == "application/json"
    if provider == "openai":
        assert call.path == "/v1/chat/completions"
        assert call.headers["Authorization"] == f"Bearer {KEYS['openai']}"
        assert sent["max_tokens"] == 5 and sent["temperature"] == 0.2
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    elif provider == "anthropic":
        assert call.path == "/v1/messages"
        assert call.headers["x-api-key"] == KEYS["anthropic"]
        assert call.headers["anthropic-version"] == "2023-06-01"
        assert "Authorization" not in call.headers
        assert sent["max_tokens"] == 5 and isinstance(sent["system"], str)
        assert [m["role"] for m in sent["messages"]] == ["user"]
    else:
        assert call.path == "/api/chat"
        assert "Authorization" not in call.headers
        assert sent["stream"] is False
        assert sent["options"] == {"num_predict": 5, "temperature": 0.2}


def test_patch_rotates_the_key_and_a_refusal_is_recorded_clearly(
        client: FlaskClient, ws: Workspace) -> None:
    headers = ws.user["headers"]
    with anthropic_stub() as stub:
        created = add_ai(client, headers, "anthropic", stub)
        patched = client.patch(f"/integrations/{created['id']}", headers=headers,
                               json={"secrets": {"api_key": "sk-ant-bad"}})
        assert patched.status_code == 200 and patched.json["secrets"] == {
            "api_key": "configured"}
        response = client.post(f"/integrations/{created['id']}/test", headers=headers)

    assert stub.calls[-1].headers["x-api-key"] == "sk-ant-bad"
    assert len(stub.calls) == 1, "a 401 is not retried"
    assert response.json["status"] == "error" and response.json["status_code"] == 401
    assert response.json["error"] == ("anthropic refused the request (HTTP 401): "
                                      "invalid x-api-key")
    assert response.json["integration"]["status"] == "error"
    assert response.json["integration"]["last_test_status"] == "error"


def test_overloaded_provider_is_retried(app: Flask, client: FlaskClient, ws: Workspace) -> None:
    app.config["AI_RETRIES"] = 2
    with openai_stub() as stub:
        created = add_ai(client, ws.user["headers"], "openai", stub)
        stub.fail_next = [(429, {"error": {"message": "Rate limit reached"}}),
                          (503, {"error": {"message": "overloaded"}})]
        response = client.post(f"/integrations/{created['id']}/test",
                               headers=ws.user["headers"])
    assert response.json["status"] == "ok", response.json
    assert len(stub.calls) == 3


def resolve(client: FlaskClient, headers: dict[str, str], task: str = "diagnosis") -> Any:
    response = client.get(f"/ai-config/resolve?task={task}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_resolution_walks_override_tenant_global_environment(
        app: Flask, client: FlaskClient, ws: Workspace, make_user: Any) -> None:
    headers = ws.user["headers"]
    admin = make_user(admin=True)["headers"]
    assert client.get("/ai-config/resolve", headers=headers).json["error"]["code"] == (
        "no_ai_provider")
    app.config.update(OPENAI_API_KEY="sk-env-openai-key-123456", OPENAI_BASE_URL="http://o.test/v1")
    assert resolve(client, headers) == {
        "task": "diagnosis", "source": "environment", "integration_id": None,
        "provider": "openai", "model": "gpt-4o-mini", "base_url": "http://o.test/v1"}
    with anthropic_stub() as stub_a, openai_stub() as stub_o, ollama_stub() as stub_l:
        first_global = add_ai(client, admin, "anthropic", stub_a, "/admin/integrations")
        assert resolve(client, headers)["source"] == "global_integration"
        second_global = add_ai(client, admin, "ollama", stub_l, "/admin/integrations")
        put = client.put("/admin/ai-config", headers=admin,
                         json={"default_provider": second_global["id"]})
        assert put.status_code == 200, put.json
        assert (resolve(client, headers)["source"], resolve(client, headers)["integration_id"]
                ) == ("global_default", second_global["id"])
        own = add_ai(client, headers, "openai", stub_o)
        assert resolve(client, headers)["source"] == "tenant_integration"
        other_own = add_ai(client, headers, "ollama", stub_l)
        put = client.put("/ai-config", headers=headers, json={
            "default_provider": other_own["id"],
            "agent_overrides": [{"agent_name": "diagnosis", "integration_id": own["id"]},
                                {"agent_name": "repair",
                                 "integration_id": first_global["id"]}]})
        assert put.status_code == 200, put.json
        assert put.json["agent_overrides"][0] == {"agent_name": "diagnosis",
                                                  "integration_id": own["id"]}
        assert resolve(client, headers, "diagnosis")["source"] == "override"
        assert resolve(client, headers, "diagnosis")["integration_id"] == own["id"]
        assert resolve(client, headers, "repair")["integration_id"] == first_global["id"]
        assert resolve(client, headers, "flakiness")["source"] == "tenant_default"
        client.patch(f"/integrations/{own['id']}", headers=headers, json={"enabled": False})
        assert resolve(client, headers, "diagnosis")["source"] == "tenant_default"
    assert client.get("/ai-config", headers=headers).json["default_provider"] == other_own["id"]


def test_unimplemented_tasks_are_refused_with_the_implemented_list(
        client: FlaskClient, ws: Workspace) -> None:
    headers = ws.user["headers"]
    with openai_stub() as stub:
        own = add_ai(client, headers, "openai", stub)
    response = client.put("/ai-config", headers=headers, json={
        "agent_overrides": [{"agent_name": "coverage", "integration_id": own["id"]}]})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "ai_task_not_implemented"
    assert response.json["error"]["details"]["implemented"] == ["diagnosis", "repair",
                                                                "flakiness"]
    assert client.get("/ai-config/resolve?task=generation",
                      headers=headers).status_code == 422
    job = ws.agent() and ws.trigger_id(script="fail.sh")
    assert client.post(f"/jobs/{job}/diagnose", headers=ws.headers,
                       json={"task": "watch"}).status_code == 422
    bad = client.put("/ai-config", headers=headers, json={"default_provider": "int_nope"})
    assert bad.status_code == 422


def failed_job(ws: Workspace, stderr: str, params: dict[str, str]) -> str:
    sim = ws.agents[0] if ws.agents else ws.agent()
    job_id = ws.trigger_id(script="fail.sh", params=params)
    sim.take(job_id)
    response = sim.result(job_id, "failed", exit_code=3, stdout="about to fail\n",
                          stderr=stderr, error="exit code 3")
    assert response.status_code == 200, response.json
    return job_id


def test_diagnosis_runs_in_the_worker_redacted_and_lands_on_the_job(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    headers = ws.user["headers"]
    slack_secret = "https://hooks.slack.com/services/T0/B0/slack-very-secret-path"
    assert client.post("/integrations", headers=headers, json={
        "type": "slack", "name": "ops", "config": {"events": ["agent.offline"]},
        "secrets": {"webhook_url": slack_secret}}).status_code == 201
    stderr = (f"posting to {slack_secret} failed\n"
              "auth with ghp_abcdefghijklmnopqrstuvwxyz0123456789 refused\n"
              "DB_PASSWORD=hunter2-but-longer\nNo space left on device\n")
    with openai_stub() as stub:
        add_ai(client, headers, "openai", stub, model="gpt-4o")
        job_id = failed_job(ws, stderr, {"db_password": "value-never-sent", "target": "s3"})
        queued = client.post(f"/jobs/{job_id}/diagnose", headers=ws.headers)
        assert queued.status_code == 202, queued.json
        assert queued.json["status"] == "queued"
        assert ws.job(job_id)["diagnosis"] is None
        run_background_jobs(app)

    [call] = stub.calls
    prompt = call.json["messages"][1]["content"]
    context = json.loads(prompt)
    assert context["script"] == "fail.sh" and context["exit_code"] == 3
    assert context["param_names"] == ["db_password", "target"]
    assert context["error"] == "exit code 3"
    assert "No space left on device" in context["stderr_tail"]
    assert "about to fail" in context["stdout_tail"]
    for secret in ("value-never-sent", "slack-very-secret-path", "ghp_abcdefghij",
                   "hunter2", KEYS["openai"]):
        assert secret not in call.body.decode(), secret
    assert context["stderr_tail"].count("[REDACTED]") == 3
    diagnosis = ws.job(job_id)["diagnosis"]
    assert {k: diagnosis[k] for k in ("summary", "likely_cause", "suggested_fix")} == (
        json.loads(DIAGNOSIS_JSON))
    assert diagnosis["provider"] == "openai" and diagnosis["model"] == "gpt-4o-2024-08-06"
    assert diagnosis["created_at"].endswith("Z")
    analysis = client.get(f"/ai/analyses/{queued.json['id']}", headers=ws.headers).json
    assert analysis["status"] == "done" and analysis["result"] == diagnosis


def test_flow_diagnosis_sends_the_failed_steps(app: Flask, client: FlaskClient,
                                               ws: Workspace) -> None:
    from orchestrator.extensions import db
    from orchestrator.models import Job, JobStep

    with anthropic_stub() as stub:
        add_ai(client, ws.user["headers"], "anthropic", stub)
        job_id = failed_job(ws, "boom", {})
        with app.app_context():
            job = db.session.get(Job, job_id)
            db.session.add_all([
                JobStep(tenant_id=job.tenant_id, job_id=job_id, step_id="fetch",
                        action="http_request", status="passed", seq=1, last_seq=1),
                JobStep(tenant_id=job.tenant_id, job_id=job_id, step_id="check",
                        action="http_request", status="failed", seq=2, last_seq=2,
                        error="assertion failed: status == 200 (got 503)")])
            db.session.commit()
        client.post(f"/jobs/{job_id}/diagnose", headers=ws.headers, json={"task": "repair"})
        run_background_jobs(app)
    context = json.loads(stub.calls[0].json["messages"][0]["content"])
    assert context["task"] == "repair"
    assert context["failed_steps"] == [{
        "step": "check", "name": None, "action": "http_request", "status": "failed",
        "error": "assertion failed: status == 200 (got 503)", "reason": None}]
    assert ws.job(job_id)["diagnosis"]["provider"] == "anthropic"


def test_refusal_marks_the_analysis_and_leaves_the_job(app: Flask, client: FlaskClient,
                                                       ws: Workspace) -> None:
    with openai_stub() as stub:
        created = add_ai(client, ws.user["headers"], "openai", stub)
        client.patch(f"/integrations/{created['id']}", headers=ws.user["headers"],
                     json={"secrets": {"api_key": "sk-bad"}})
        job_id = failed_job(ws, "boom", {})
        queued = client.post(f"/jobs/{job_id}/diagnose", headers=ws.headers).json
        run_background_jobs(app)
    analysis = client.get(f"/ai/analyses/{queued['id']}", headers=ws.headers).json
    assert analysis["status"] == "error"
    assert analysis["error"].startswith("openai refused the request (HTTP 401)")
    assert ws.job(job_id)["diagnosis"] is None


def test_flakiness_reads_the_scripts_history_and_auto_diagnosis(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    with ollama_stub() as stub:
        add_ai(client, ws.user["headers"], "ollama", stub)
        assert client.put("/ai-config", headers=ws.user["headers"],
                          json={"auto_diagnose": True}).json["auto_diagnose"] is True
        job_id = failed_job(ws, "flaky network", {})
        run_background_jobs(app)
        assert ws.job(job_id)["diagnosis"]["provider"] == "ollama"
        queued = client.post("/ai/analyses", headers=ws.headers,
                             json={"task": "flakiness", "script": "fail.sh"})
        assert queued.status_code == 202, queued.json
        run_background_jobs(app)
    history = json.loads(stub.calls[-1].json["messages"][1]["content"])
    assert history["task"] == "flakiness" and history["script"] == "fail.sh"
    assert [run["status"] for run in history["runs"]] == ["failed"]
    done = client.get(f"/ai/analyses/{queued.json['id']}", headers=ws.headers).json
    assert done["status"] == "done" and done["result"]["summary"]
