"""POST /agent/dispatch on the hub: the opt-in gate, one error shape, definition in assignment."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace

DEFINITION = {"name": "Signup", "suite": "auth", "tags": ["smoke"],
              "steps": [{"id": "ping", "action": "log", "config": {"message": "hi"}}]}


class InlineAgent(SimAgent):
    """A simulated agent that reports ALLOW_INLINE_FLOWS=true (or not)."""

    inline = True

    def manifest_body(self) -> dict[str, Any]:
        return {"scripts": [{"name": n, "description": ""} for n in self.scripts], "flows": [],
                **({"inline_flows": True} if self.inline else {})}

    def register(self, **extra: Any) -> Any:
        return super().register(**{"manifest": self.manifest_body(), **extra})


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def agent(ws: Workspace, name: str, inline: bool) -> InlineAgent:
    sim = InlineAgent(ws.client, ws.new_key(ws.user["user_id"], scope="agent"), name)
    sim.inline = inline
    assert sim.register().status_code == 200
    return sim


def dispatch(ws: Workspace, **body: Any) -> Any:
    return ws.client.post("/agent/dispatch", json=body, headers=ws.headers)


def test_dispatch_queues_a_flow_job_whose_assignment_carries_the_definition(
        ws: Workspace) -> None:
    agent(ws, "plain", inline=False)
    sim = agent(ws, "inline", inline=True)
    response = dispatch(ws, flow_id="f-1", definition=DEFINITION, variables={"env": "staging"})
    assert response.status_code == 202, response.json
    body = response.json
    assert body["status"] == "dispatched" and body["execution_id"] == body["job_id"]
    [assignment] = sim.poll_jobs()
    assert assignment["job_id"] == body["job_id"] and assignment["kind"] == "flow"
    assert assignment["flow"] == "Signup" and assignment["definition"] == DEFINITION
    assert assignment["variables"] == {"env": "staging"}
    job = ws.client.get(f"/jobs/{body['job_id']}", headers=ws.headers).json
    assert job["flow"] == "Signup" and job["agent"] == "inline"


def test_dispatch_is_refused_without_an_opted_in_agent(ws: Workspace) -> None:
    agent(ws, "plain", inline=False)
    response = dispatch(ws, agent="plain", definition=DEFINITION)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "inline_flows_not_allowed"
    assert response.json["error"]["details"] == {"agent": "plain"}
    response = dispatch(ws, definition=DEFINITION)
    assert response.status_code == 422 and response.json["error"]["code"] == "no_inline_agent"
    assert dispatch(ws, agent="ghost", definition=DEFINITION).status_code == 404


@pytest.mark.parametrize(("definition", "code"), [
    ({"name": "no steps"}, "invalid_flow"),
    ({"name": "big", "steps": [{"id": "x" * 300_000}]}, "invalid_flow"),
])
def test_bad_definitions_are_422_in_the_one_error_shape(ws: Workspace, definition: Any,
                                                        code: str) -> None:
    agent(ws, "inline", inline=True)
    response = dispatch(ws, agent="inline", definition=definition)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == code


def test_missing_definition_and_bad_variables_are_422(ws: Workspace) -> None:
    agent(ws, "inline", inline=True)
    assert dispatch(ws, agent="inline").status_code == 422
    response = dispatch(ws, agent="inline", definition="nope")
    assert response.status_code == 422 and set(response.json["error"]) == {
        "code", "message", "details"}
