"""Flow jobs on the hub: run_flow triggers, flow assignments, step events, steps in GET /jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from orchestrator.extensions import db
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace

FLOWS = ("health", "checkout")


class FlowAgent(SimAgent):
    """A simulated agent whose manifest also whitelists flows."""

    flows: tuple[str, ...] = FLOWS

    def manifest(self) -> dict[str, Any]:
        return {"scripts": [{"name": n, "description": ""} for n in self.scripts],
                "flows": [{"name": n, "description": f"{n} flow"} for n in self.flows]}

    def register(self, **extra: Any) -> TestResponse:
        return super().register(**{"manifest": self.manifest(), **extra})

    def heartbeat(self, running: Iterable[str] = (), **extra: Any) -> TestResponse:
        return super().heartbeat(running, **{"manifest": self.manifest(), **extra})

    def events(self, job_id: str, events: list[dict[str, Any]]) -> TestResponse:
        return self.post(f"/agent/jobs/{job_id}/events",
                         {"agent_name": self.name, "events": events})


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def flow_agent(ws: Workspace, name: str = "agent-1") -> FlowAgent:
    sim = FlowAgent(ws.client, ws.new_key(ws.user["user_id"], scope="agent"), name)
    assert sim.register().status_code == 200
    return sim


def trigger_flow(ws: Workspace, flow: str = "health", **extra: Any) -> TestResponse:
    body = {"agent": "agent-1", "run_flow": flow, **extra}
    return ws.client.post("/trigger-script", json=body, headers=ws.headers)


def started(seq: int, step_id: str, action: str = "http_request") -> dict[str, Any]:
    return {"type": "step_started", "seq": seq, "id": step_id, "name": step_id,
            "action": action, "status": "running", "started_at": "2026-03-10T14:32:11.123Z"}


def finished(seq: int, step_id: str, status: str = "passed", **extra: Any) -> dict[str, Any]:
    kind = {"passed": "step_completed", "failed": "step_failed"}[status]
    return {"type": kind, "seq": seq, "id": step_id, "name": step_id, "action": "http_request",
            "status": status, "started_at": "2026-03-10T14:32:11.123Z", "duration_ms": 42,
            "attempts": 1, "assertions": [{"expression": "status == 200", "passed": True}],
            "error": None, "outputs": {}, **extra}


def test_run_flow_job_is_assigned_with_its_variables(ws: Workspace) -> None:
    sim = flow_agent(ws)
    variables = {"base_url": "http://svc", "retries": 3, "tags": ["a", "b"],
                 "auth": {"user": "u"}, "dry": False}
    response = trigger_flow(ws, variables=variables, timeout=60)
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    assert job_id.startswith("job_") and response.json["status"] == "pending"
    [assignment] = sim.poll_jobs()
    assert assignment["job_id"] == job_id
    assert assignment["kind"] == "flow" and assignment["flow"] == "health"
    assert assignment["variables"] == variables and assignment["timeout"] == 60
    job = ws.job(job_id)
    assert job["kind"] == "flow" and job["flow"] == "health"
    assert job["variables"] == variables and job["steps"] == []
    script_job = ws.job(ws.trigger_id())
    assert script_job["kind"] == "script" and script_job["flow"] is None


@pytest.mark.parametrize("body", [
    {"run_script": "hello.sh", "run_flow": "health"},
    {},
    {"run_flow": "health", "variables": ["not", "an", "object"]},
    {"run_flow": "health", "variables": "text"},
    {"run_flow": ""},
])
def test_run_flow_validation_is_422(ws: Workspace, body: dict[str, Any]) -> None:
    flow_agent(ws)
    response = ws.client.post("/trigger-script", json={"agent": "agent-1", **body},
                              headers=ws.headers)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"


def test_unlisted_flow_is_403_naming_flow_and_agent(ws: Workspace) -> None:
    flow_agent(ws)
    response = trigger_flow(ws, "drop_tables")
    assert response.status_code == 403
    error = response.json["error"]
    assert error["code"] == "flow_not_in_manifest"
    assert error["details"] == {"flow": "drop_tables", "agent": "agent-1"}
    assert "drop_tables" in error["message"] and "agent-1" in error["message"]
    # a script's name is not a flow, nor a flow's name a script
    assert trigger_flow(ws, "hello.sh").status_code == 403
    assert ws.trigger(script="health").json["error"]["code"] == "script_not_in_manifest"


def test_get_scripts_lists_flows(ws: Workspace) -> None:
    flow_agent(ws)
    response = ws.client.get("/get-scripts?agent=agent-1", headers=ws.headers)
    assert response.status_code == 200
    assert [f["name"] for f in response.json["flows"]] == list(FLOWS)


def test_steps_are_visible_while_running_and_uploads_are_idempotent(ws: Workspace) -> None:
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    first = [started(1, "login"), finished(2, "login", outputs={"token": "t-1"}),
             started(3, "wait", "delay")]
    assert sim.events(job_id, first).json == {"cancel": False}
    job = ws.job(job_id)
    assert job["status"] == "running"
    assert [(s["id"], s["status"]) for s in job["steps"]] == [("login", "passed"),
                                                              ("wait", "running")]
    login = job["steps"][0]
    assert login["action"] == "http_request" and login["duration_ms"] == 42
    assert login["started_at"] == "2026-03-10T14:32:11.123Z"
    assert login["outputs"] == {"token": "t-1"} and login["error"] is None
    assert login["assertions"] == [{"expression": "status == 200", "passed": True}]
    # the same batch again (a retried upload), and a stale step_started: nothing changes
    assert sim.events(job_id, first).status_code == 200
    assert sim.events(job_id, [started(1, "login")]).status_code == 200
    assert ws.job(job_id)["steps"] == job["steps"]


def test_nested_steps_have_a_parent_and_keep_event_order(ws: Workspace) -> None:
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    events = [started(1, "loop", "for_each"), started(2, "loop[0].call"),
              finished(3, "loop[0].call"), started(4, "loop[1].call"),
              finished(5, "loop[1].call", "failed", error="step loop[1].call: HTTP 500"),
              finished(6, "loop", "failed", error="item 1 failed"),
              {"type": "step_skipped", "seq": 7, "id": "notify", "name": "notify",
               "action": "log", "status": "skipped", "started_at": "2026-03-10T14:32:12Z",
               "duration_ms": 0, "reason": "when is false"}]
    assert sim.events(job_id, events).status_code == 200
    steps = ws.job(job_id)["steps"]
    assert [s["id"] for s in steps] == ["loop", "loop[0].call", "loop[1].call", "notify"]
    assert [s["parent"] for s in steps] == [None, "loop", "loop", None]
    assert [s["status"] for s in steps] == ["failed", "passed", "failed", "skipped"]
    assert steps[2]["error"] == "step loop[1].call: HTTP 500"
    assert steps[3]["reason"] == "when is false"


def test_result_applies_the_remaining_events_then_finishes(ws: Workspace) -> None:
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    sim.events(job_id, [started(1, "check")])
    tail = [started(1, "check"),
            finished(2, "check", "failed", error="assertion failed: status == 200",
                     assertions=[{"expression": "status == 200", "passed": False}]),
            {"type": "flow_failed", "seq": 3, "flow": "health", "status": "failed",
             "error": "step check: assertion failed: status == 200", "outputs": {},
             "steps": {"passed": 0, "failed": 1, "skipped": 0}}]
    response = sim.result(job_id, "failed", exit_code=None, events=tail,
                          error="step check: assertion failed: status == 200",
                          stdout="[FAIL ] check 42ms: assertion failed: status == 200\n")
    assert response.status_code == 200, response.json
    job = ws.job(job_id)
    assert job["status"] == "failed" and job["exit_code"] is None
    assert job["error"] == "step check: assertion failed: status == 200"
    assert "[FAIL ] check" in job["stdout"]
    assert [(s["id"], s["status"]) for s in job["steps"]] == [("check", "failed")]
    assert job["steps"][0]["assertions"] == [{"expression": "status == 200", "passed": False}]


def test_events_are_refused_unless_the_job_is_this_agents_running_flow(ws: Workspace) -> None:
    sim = flow_agent(ws)
    other = flow_agent(ws, "agent-2")
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    foreign = other.events(job_id, [started(1, "x")])
    assert foreign.status_code == 409
    assert foreign.json["error"]["code"] == "job_not_leased"
    script_id = ws.trigger_id()
    sim.take(script_id)
    not_flow = sim.events(script_id, [started(1, "x")])
    assert not_flow.status_code == 409 and not_flow.json["error"]["code"] == "job_not_a_flow"
    bad = sim.events(job_id, [{"type": "step_exploded", "seq": 1, "id": "x"}])
    assert bad.status_code == 422
    assert sim.events(job_id, [{"type": "step_started", "seq": 0, "id": "x"}]).status_code == 422
    assert ws.job(job_id)["steps"] == []


def test_cancel_reaches_the_agent_through_event_uploads(ws: Workspace) -> None:
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    response = ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers)
    assert response.status_code == 202
    assert sim.events(job_id, [started(1, "wait", "delay")]).json == {"cancel": True}
    assert sim.result(job_id, "cancelled", error="cancelled: requested by the hub").status_code \
        == 200
    assert ws.job(job_id)["status"] == "cancelled"
    # the job is decided: later events are not stored and still answer cancel
    assert sim.events(job_id, [finished(2, "wait")]).json == {"cancel": True}
    assert ws.job(job_id)["steps"][0]["status"] == "running"


def test_flow_job_in_a_pool(ws: Workspace) -> None:
    sim = flow_agent(ws)
    response = ws.client.post("/trigger-script", headers=ws.headers,
                              json={"pool": "test", "run_flow": "health",
                                    "variables": {"n": 1}})
    assert response.status_code == 202, response.json
    [assignment] = sim.poll_jobs()
    assert (assignment["kind"], assignment["flow"], assignment["variables"]) == (
        "flow", "health", {"n": 1})
    missing = ws.client.post("/trigger-script", headers=ws.headers,
                             json={"pool": "test", "run_flow": "nope"})
    assert missing.status_code == 422 and missing.json["error"]["code"] == "no_pool_agent"


def test_steps_keep_only_what_the_engine_sent(app: Flask, ws: Workspace) -> None:
    """The hub stores the event's fields it knows; anything else in an event is dropped."""
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    event = finished(1, "fetch", outputs={"count": 2})
    event["body"] = "RAW-RESPONSE-BODY"  # an engine never sends this; the hub must not keep it
    assert sim.events(job_id, [event]).status_code == 200
    assert "RAW-RESPONSE-BODY" not in json.dumps(ws.job(job_id))
    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM job_steps")).mappings().all()
    assert len(rows) == 1 and "RAW-RESPONSE-BODY" not in json.dumps(
        [dict(r) for r in rows], default=str)
