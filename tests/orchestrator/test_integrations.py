"""Integrations: each provider's real payload at a local receiver, scoping, tests, validation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.services.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.orchestrator.agent_sim import Workspace, workspace
from tests.orchestrator.receiver import Receiver, run_background_jobs


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def add(client: FlaskClient, headers: dict[str, str], type_: str, config: dict[str, Any],
        secrets: dict[str, str] | None = None, path: str = "/integrations") -> dict[str, Any]:
    body = {"type": type_, "name": f"{type_}-alerts", "config": config}
    if secrets is not None:
        body["secrets"] = secrets
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def every_type(url: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """(config, secrets) per type, every one aimed at the local receiver."""
    events = ["job.failed"]
    return {
        "slack": ({"webhook_url": url + "/services/T0/B0/slack-secret", "events": events}, {}),
        "discord": ({"events": events}, {"webhook_url": url + "/api/webhooks/1/discord-secret"}),
        "teams": ({"webhook_url": url + "/webhookb2/teams-secret", "events": events}, {}),
        "pagerduty": ({"routing_key": "pd-routing-secret", "events": events, "base_url": url},
                      {}),
        "datadog": ({"events": events, "base_url": url, "tags": ["team:ops"]},
                    {"api_key": "dd-api-secret"}),
        "splunk": ({"url": url, "events": events}, {"token": "splunk-hec-secret"}),
        "prometheus": ({"url": url, "events": events, "username": "push"},
                       {"password": "prom-secret"}),
        "webhook": ({"url": url + "/generic", "events": events},
                    {"secret": "generic-signing-secret"}),
    }


SECRETS = ("slack-secret", "discord-secret", "teams-secret", "pd-routing-secret",
           "dd-api-secret", "splunk-hec-secret", "prom-secret", "generic-signing-secret")


def failed_job(ws: Workspace, stderr: str = "disk full") -> str:
    sim = ws.agents[0] if ws.agents else ws.agent()
    job_id = ws.trigger_id(script="fail.sh")
    sim.take(job_id)
    assert sim.result(job_id, "failed", stderr=stderr, exit_code=3).status_code == 200
    return job_id


def by_path(receiver: Receiver) -> dict[str, Any]:
    return {r.path: r for r in receiver.requests}


def test_every_type_speaks_its_providers_api(app: Flask, client: FlaskClient,
                                            ws: Workspace) -> None:
    headers = ws.user["headers"]
    with Receiver() as receiver:
        for type_, (config, secrets) in every_type(receiver.url).items():
            add(client, headers, type_, config, secrets)
        ws.agent()
        job_id = failed_job(ws)
        run_background_jobs(app)
        got = by_path(receiver)

    assert len(receiver.requests) == 8, receiver.paths()
    slack = got["/services/T0/B0/slack-secret"].json
    assert slack["text"].endswith("Job failed: fail.sh on agent-1")
    assert slack["blocks"][0] == {"type": "header", "text": {
        "type": "plain_text", "text": "Job failed: fail.sh on agent-1"}}
    assert any(b["type"] == "section" and "fields" in b for b in slack["blocks"])

    discord = got["/api/webhooks/1/discord-secret"].json
    (embed,) = discord["embeds"]
    assert embed["title"] == "Job failed: fail.sh on agent-1" and embed["color"] == 0xE01E5A
    assert {"name": "Exit code", "value": "3", "inline": True} in embed["fields"]

    teams = got["/webhookb2/teams-secret"].json
    assert teams["@type"] == "MessageCard" and teams["summary"].startswith("Job failed")
    assert {"name": "Job", "value": job_id} in teams["sections"][0]["facts"]

    pagerduty = got["/v2/enqueue"].json
    assert pagerduty["routing_key"] == "pd-routing-secret"
    assert pagerduty["event_action"] == "trigger"
    assert pagerduty["dedup_key"].endswith("/job/script/agent-1/fail.sh")
    assert pagerduty["payload"]["severity"] == "error"
    assert pagerduty["payload"]["source"] == "agent-1"

    datadog = got["/api/v1/events"]
    assert datadog.headers["DD-API-KEY"] == "dd-api-secret"
    assert datadog.json["alert_type"] == "error"
    assert {"event:job.failed", "agent:agent-1", "team:ops"} <= set(datadog.json["tags"])

    splunk = got["/services/collector/event"]
    assert splunk.headers["Authorization"] == "Splunk splunk-hec-secret"
    assert splunk.json["event"]["event_type"] == "job.failed"
    assert splunk.json["event"]["job_id"] == job_id and splunk.json["host"] == "agent-1"

    prometheus = got["/metrics/job/scriptmesh/agent/agent-1/script/fail.sh"]
    assert prometheus.method == "PUT"
    assert prometheus.headers["Authorization"] == "Basic " + base64.b64encode(
        b"push:prom-secret").decode()
    text = prometheus.body.decode()
    assert "# TYPE scriptmesh_job_last_success gauge" in text
    assert "scriptmesh_job_last_success 0.0" in text
    assert "scriptmesh_job_last_exit_code 3.0" in text

    generic = got["/generic"]
    assert generic.json["type"] == "job.failed" and generic.json["data"]["job_id"] == job_id
    assert verify_signature("generic-signing-secret", generic.headers[TIMESTAMP_HEADER],
                            generic.body, generic.headers[SIGNATURE_HEADER])

    deliveries = client.get(f"/jobs/{job_id}/deliveries", headers=ws.headers).json["deliveries"]
    assert sorted(d["integration_type"] for d in deliveries) == sorted(every_type("x"))
    assert all(d["success"] and d["target"] == receiver.url for d in deliveries)


def test_secrets_never_stored_or_shown_in_clear(app: Flask, client: FlaskClient,
                                                ws: Workspace,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    headers = ws.user["headers"]
    shown = []
    with Receiver(statuses=(500,) * 20) as receiver:
        for type_, (config, secrets) in every_type(receiver.url).items():
            created = add(client, headers, type_, config, secrets)
            shown.append(created)
            assert set(created["secrets"].values()) == {"configured"}
            shown.append(client.get(f"/integrations/{created['id']}", headers=headers).json)
            shown.append(client.post(f"/integrations/{created['id']}/test",
                                     headers=headers).json)
        shown.append(client.get("/integrations", headers=headers).json)
        app.config["WEBHOOK_RETRY_DELAYS"] = "0"
        ws.agent()
        job_id = failed_job(ws)
        run_background_jobs(app)
        shown.append(client.get(f"/jobs/{job_id}/deliveries", headers=ws.headers).json)
        assert len(receiver.requests) >= 16

    with app.app_context():
        from orchestrator.extensions import db
        rows = db.session.execute(db.text("SELECT * FROM integrations")).all()
    stored = repr(rows)
    for secret in SECRETS:
        assert secret not in stored, f"{secret} stored in clear"
        assert secret not in repr(shown), f"{secret} in a response"
        assert secret not in caplog.text, f"{secret} in the logs"
    assert '"kid"' in stored or "'kid'" in stored


def test_tenant_integration_beats_the_global_one(app: Flask, client: FlaskClient,
                                                 ws: Workspace, make_user: Any,
                                                 make_api_key: Any) -> None:
    admin = make_user(admin=True)
    with Receiver() as receiver:
        add(client, admin["headers"], "slack",
            {"webhook_url": receiver.url + "/global", "events": ["job.failed"]},
            path="/admin/integrations")
        add(client, ws.user["headers"], "slack",
            {"webhook_url": receiver.url + "/tenant-a", "events": ["job.failed"]})
        ws.agent()
        failed_job(ws)
        other = workspace(client, make_user, make_api_key)
        other.agent()
        failed_job(other)
        run_background_jobs(app)
        assert sorted(receiver.paths()) == ["/global", "/tenant-a"]

        listed = client.get("/integrations", headers=other.user["headers"]).json
        assert [(i["scope"], i["type"]) for i in listed["integrations"]] == [
            ("global", "slack")]
        assert "webhook_url" not in listed["integrations"][0]["config"]


def test_environment_fallback_when_no_integration(app: Flask, ws: Workspace) -> None:
    with Receiver() as receiver:
        app.config["SLACK_WEBHOOK_URL"] = receiver.url + "/env-slack"
        ws.agent()
        failed_job(ws)
        run_background_jobs(app)
        assert receiver.paths() == ["/env-slack"]


def test_pagerduty_resolves_when_the_next_run_succeeds(app: Flask, client: FlaskClient,
                                                       ws: Workspace) -> None:
    with Receiver() as receiver:
        add(client, ws.user["headers"], "pagerduty",
            {"routing_key": "rk", "events": ["job.failed"], "base_url": receiver.url})
        sim = ws.agent()
        ok_first = ws.trigger_id(script="fail.sh")
        sim.take(ok_first)
        sim.result(ok_first, "success")
        run_background_jobs(app)
        assert receiver.requests == [], "no incident open: nothing to resolve"
        failed_job(ws)
        run_background_jobs(app)
        job_id = ws.trigger_id(script="fail.sh")
        sim.take(job_id)
        sim.result(job_id, "success")
        run_background_jobs(app)
        trigger, resolve = (r.json for r in receiver.requests)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]


def test_test_endpoint_records_the_outcome(client: FlaskClient, ws: Workspace) -> None:
    headers = ws.user["headers"]
    with Receiver(statuses=(404,)) as receiver:
        created = add(client, headers, "discord",
                      {"webhook_url": receiver.url + "/d", "events": ["agent.offline"]})
        failed = client.post(f"/integrations/{created['id']}/test", headers=headers).json
        assert failed["status"] == "error" and failed["status_code"] == 404
        assert failed["integration"]["status"] == "error"
        assert failed["integration"]["last_test_error"] == "HTTP 404"
        ok = client.post(f"/integrations/{created['id']}/test", headers=headers).json
        assert ok["status"] == "ok" and ok["integration"]["status"] == "active"
        assert ok["integration"]["last_test_status"] == "ok"
        assert ok["integration"]["last_test_at"].endswith("Z")
        assert receiver.requests[-1].json["embeds"][0]["title"] == (
            "ScriptMesh test notification")


def test_patch_replaces_only_the_secrets_it_names(app: Flask, client: FlaskClient,
                                                  ws: Workspace) -> None:
    headers = ws.user["headers"]
    with Receiver() as receiver:
        created = add(client, headers, "webhook",
                      {"url": receiver.url + "/old", "events": ["job.failed"]},
                      {"secret": "first-secret"})
        patched = client.patch(f"/integrations/{created['id']}", headers=headers, json={
            "name": "renamed", "config": {"url": receiver.url + "/new"}})
        assert patched.status_code == 200 and patched.json["name"] == "renamed"
        assert patched.json["secrets"] == {"secret": "configured"}
        ws.agent()
        failed_job(ws)
        run_background_jobs(app)
        request = receiver.requests[-1]
        assert request.path == "/new"
        assert verify_signature("first-secret", request.headers[TIMESTAMP_HEADER],
                                request.body, request.headers[SIGNATURE_HEADER])


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "carrier-pigeon", "name": "x"}, "type"),
    ({"type": "pagerduty", "name": "x", "config": {"events": ["job.failed"]}},
     "config.routing_key"),
    ({"type": "slack", "name": "x", "config": {"webhook_url": "https://h/x",
                                              "events": ["job.exploded"]}}, "config.events"),
    ({"type": "slack", "name": "x", "config": {"webhook_url": "ftp://h/x"}},
     "secrets.webhook_url"),
    ({"type": "datadog", "name": "x", "secrets": {"api_key": "k", "password": "p"}},
     "secrets.password"),
])
def test_invalid_integrations_are_422(client: FlaskClient, ws: Workspace,
                                      body: dict[str, Any], field: str) -> None:
    response = client.post("/integrations", json=body, headers=ws.user["headers"])
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]["fields"]


def test_admin_integrations_need_an_instance_admin(client: FlaskClient,
                                                   ws: Workspace) -> None:
    body = {"type": "slack", "name": "x", "config": {"webhook_url": "https://h/x"}}
    response = client.post("/admin/integrations", json=body, headers=ws.user["headers"])
    assert response.status_code == 403
    assert client.get("/admin/integrations", headers=ws.user["headers"]).status_code == 403
    assert client.post("/integrations", json=body, headers=ws.headers).status_code == 403
