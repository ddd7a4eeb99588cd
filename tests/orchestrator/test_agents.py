"""Agents: registration and key binding, heartbeats, the fleet view, scripts, deregistering."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Agent, ApiKey, Event, utcnow
from orchestrator.services.maintenance import run_maintenance
from tests.orchestrator.agent_sim import SimAgent, Workspace, bearer, manifest, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def events(app: Flask, type_: str) -> list[Event]:
    with app.app_context():
        return list(db.session.execute(
            db.select(Event).where(Event.type == type_).order_by(Event.created_at)).scalars())


def test_agent_registration_answers_the_protocol_shape(app: Flask, ws: Workspace) -> None:
    sim = ws.agent(register=False)
    response = sim.register()
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok" and body["agent"] == "agent-1"
    assert body["agent_id"].startswith("agt_")
    assert body["heartbeat_interval"] == 60 and body["poll_wait"] == 25
    again = sim.register(tags=["b", "a"], version="0.2.0")
    assert again.json["agent_id"] == body["agent_id"], "upsert by name"
    fleet = ws.client.get("/agents", headers=ws.headers).json
    assert list(fleet) == ["agent-1"]
    agent = fleet["agent-1"]
    assert agent["status"] == "online" and agent["tags"] == ["a", "b"]
    assert agent["version"] == "0.2.0" and agent["workers"] == 2
    assert agent["hostname"] == "sim-host" and agent["draining"] is False
    assert agent["scripts"] == list(sim.scripts) and agent["manifest_error"] is None
    assert agent["running_jobs"] == [] and agent["last_heartbeat"].endswith("Z")
    assert [e.subject for e in events(app, "agent.online")] == ["agent-1"]


def test_agent_key_is_bound_to_its_first_name(app: Flask, ws: Workspace) -> None:
    sim = ws.agent("first")
    impostor = SimAgent(ws.client, sim.key, "second")
    ws.agent("second")
    for response in (impostor.register(), impostor.heartbeat(), impostor.poll(),
                     impostor.start("job_x"), impostor.result("job_x")):
        assert response.status_code == 403, response.json
        assert response.json["error"]["code"] == "agent_name_mismatch"
    with app.app_context():
        key = db.session.execute(db.select(ApiKey).where(ApiKey.agent_name == "first"))
        assert key.scalar_one()


def test_an_unbound_agent_key_must_register_first(ws: Workspace) -> None:
    ws.agent("present")
    fresh = SimAgent(ws.client, ws.new_key(ws.user["user_id"], scope="agent"), "present")
    response = fresh.poll()
    assert response.status_code == 403
    assert response.json["error"]["code"] == "agent_key_unbound"


def test_scopes_of_the_protocol_endpoints(ws: Workspace) -> None:
    sim = ws.agent()
    operator = SimAgent(ws.client, ws.operator_key, "agent-1")
    assert operator.heartbeat().status_code == 403, "operators are not agents"
    read_key = ws.new_key(ws.user["user_id"], scope="read")
    reader = SimAgent(ws.client, read_key, "x")
    assert reader.register().status_code == 403
    assert ws.client.post("/agent/poll", json={"agent_name": "agent-1"}).status_code == 401
    admin = SimAgent(ws.client, ws.new_key(ws.user["user_id"], scope="admin"), "agent-1")
    assert admin.heartbeat().status_code == 200, "an admin credential may act as any agent"
    assert ws.client.get("/agents", headers=bearer(sim.key)).status_code == 403


def test_manual_registration_as_in_the_product_docs(ws: Workspace) -> None:
    agent_key = ws.new_key(ws.user["user_id"], scope="agent")
    response = ws.client.post("/register-agent", headers=ws.user["headers"], json={
        "agent_name": "prod-server-1", "url": "https://prod-server-1.internal:8001",
        "api_key": agent_key, "tags": ["production", "backend"]})
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["agent"] == "prod-server-1"
    assert response.json["api_key_bound"] is True
    assert agent_key not in response.get_data(as_text=True)
    fleet = ws.client.get("/agents", headers=ws.headers).json
    assert fleet["prod-server-1"]["status"] == "offline", "a user's call is no sign of life"
    assert fleet["prod-server-1"]["url"] == "https://prod-server-1.internal:8001"
    bound = SimAgent(ws.client, agent_key, "prod-server-1")
    assert bound.heartbeat().status_code == 200, "the named key now acts as that agent"
    assert SimAgent(ws.client, agent_key, "other").register().status_code == 403
    placeholder = ws.client.post("/register-agent", headers=ws.headers, json={
        "agent_name": "prod-server-2", "api_key": "agent-key-here"})
    assert placeholder.status_code == 200 and placeholder.json["api_key_bound"] is False


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 129, "a/b"])
def test_invalid_agent_names_are_422(ws: Workspace, name: str) -> None:
    response = ws.client.post("/register-agent", headers=ws.headers, json={"agent_name": name})
    assert response.status_code == 422


def test_heartbeat_reloads_the_manifest_and_reports_state(ws: Workspace) -> None:
    sim = ws.agent()
    body = {"manifest": manifest(["new.sh"]), "manifest_error": "line 3: bad JSON",
            "draining": True}
    assert sim.heartbeat(**body).json == {"status": "ok", "commands": []}
    agent = ws.client.get("/agents", headers=ws.headers).json["agent-1"]
    assert agent["scripts"] == ["new.sh"] and agent["manifest_error"] == "line 3: bad JSON"
    assert agent["draining"] is True
    assert ws.trigger(script="hello.sh").status_code == 403
    assert ws.trigger(script="new.sh").status_code == 202
    scripts = ws.client.get("/get-scripts?agent=agent-1", headers=ws.headers)
    assert scripts.json == {"agent": "agent-1", "flows": [],
                            "scripts": [{"name": "new.sh", "description": "new.sh for tests",
                                             "params": []}]}
    assert ws.client.get("/get-scripts?agent=nobody", headers=ws.headers).status_code == 404
    assert ws.client.get("/get-scripts", headers=ws.headers).status_code == 422


def test_heartbeat_of_an_unknown_agent_is_404(ws: Workspace) -> None:
    admin = SimAgent(ws.client, ws.new_key(ws.user["user_id"], scope="admin"), "ghost")
    response = admin.heartbeat()
    assert response.status_code == 404 and response.json["error"]["code"] == "agent_not_found"


def _age(app: Flask, name: str, seconds: float) -> None:
    """Move an agent's last signs of life into the past (as if time had passed)."""
    with app.app_context():
        past = utcnow() - timedelta(seconds=seconds)
        db.session.execute(sa.update(Agent).where(Agent.name == name)
                           .values(last_heartbeat=past, online_until=past))
        db.session.commit()


def test_offline_detection_records_transitions_once(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    with app.app_context():
        assert run_maintenance()["agents_offline"] == 0
    _age(app, "agent-1", 1)
    assert ws.client.get("/agents", headers=ws.headers).json["agent-1"]["status"] == "offline"
    with app.app_context():
        assert run_maintenance()["agents_offline"] == 1
        assert run_maintenance()["agents_offline"] == 0
    assert len(events(app, "agent.offline")) == 1
    sim.heartbeat()
    assert ws.client.get("/agents", headers=ws.headers).json["agent-1"]["status"] == "online"
    assert len(events(app, "agent.online")) == 2


def test_a_poll_counts_as_a_sign_of_life(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    _age(app, "agent-1", 1000)
    sim.poll_jobs()
    assert ws.client.get("/agents", headers=ws.headers).json["agent-1"]["status"] == "online"


def test_an_agents_own_interval_sets_its_window(app: Flask, ws: Workspace) -> None:
    ws.agent(register=False)
    sim = ws.agents[-1]
    sim.register(heartbeat_interval=2)
    with app.app_context():
        agent = db.session.execute(db.select(Agent)).scalar_one()
        window = (agent.online_until - agent.last_heartbeat).total_seconds()
    assert window == pytest.approx(3 * 2)


def test_deregister_cancels_queued_and_fails_running_jobs(ws: Workspace) -> None:
    sim = ws.agent()
    running = ws.trigger_id()
    sim.take(running)
    queued = ws.trigger_id()
    response = ws.client.delete("/agents/agent-1", headers=ws.headers)
    assert response.status_code == 204
    assert ws.client.get("/agents", headers=ws.headers).json == {}
    assert ws.job(queued)["status"] == "cancelled"
    assert ws.job(running)["status"] == "failed"
    assert ws.job(running)["error"] == ws.job(queued)["error"] == "agent_deregistered"
    assert sim.heartbeat().status_code == 404, "the agent will register again"
    assert sim.register().status_code == 200
    assert sim.poll_jobs() == []
    read_key = ws.new_key(ws.user["user_id"], scope="read")
    assert ws.client.delete("/agents/agent-1", headers=bearer(read_key)).status_code == 403


def test_openapi_documents_the_agent_map(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    schema = spec["paths"]["/agents"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert schema["additionalProperties"] == {"$ref": "#/components/schemas/Agent"}
    assert "Agent" in spec["components"]["schemas"]
    for path in ("/agent/poll", "/trigger-script", "/jobs/{job_id}/cancel", "/metrics/json"):
        operation = next(iter(spec["paths"][path].values()))
        assert operation["security"] == [{"bearerAuth": []}], path
