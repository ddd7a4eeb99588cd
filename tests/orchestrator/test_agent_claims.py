"""Agent names and pools cannot be claimed: a name bound to a key stays its, pools are granted."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.orchestrator.agent_sim import SimAgent, Workspace, bearer, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def sim(ws: Workspace, name: str, pools: list[str] | None = None) -> SimAgent:
    key = ws.new_key(ws.user["user_id"], scope="agent", pools=pools)
    return SimAgent(ws.client, key, name)


def key_id(ws: Workspace, agent_name: str) -> str:
    keys = ws.client.get("/auth/api-keys", headers=ws.user["headers"]).json
    return next(k["id"] for k in keys if k["agent_name"] == agent_name)


def test_an_unused_key_cannot_claim_a_bound_agent_name(ws: Workspace) -> None:
    owner = sim(ws, "prod-1")
    assert owner.register().status_code == 200
    job_id = ws.trigger_id(agent="prod-1", params={"secret": "s3cr3t"})
    thief = sim(ws, "prod-1")
    response = thief.register()
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "agent_name_taken"
    assert thief.poll().status_code == 403, "the thief never polls as prod-1"
    assert owner.poll_jobs()[0]["job_id"] == job_id


def test_an_admin_rebinds_a_name_explicitly(ws: Workspace) -> None:
    old = sim(ws, "prod-1")
    assert old.register().status_code == 200
    new = sim(ws, "spare")
    assert new.register().status_code == 200
    answer = ws.client.patch(f"/auth/api-keys/{key_id(ws, 'spare')}", headers=ws.user["headers"],
                             json={"agent_name": "prod-1"})
    assert answer.status_code == 200 and answer.json["agent_name"] == "prod-1"
    new.name = "prod-1"
    assert new.register().status_code == 200
    assert old.register().status_code == 409, "the previous key lost the name"
    operator = ws.client.patch(f"/auth/api-keys/{key_id(ws, 'prod-1')}", headers=ws.headers,
                               json={"agent_name": "x"})
    assert operator.status_code == 403, "only admins rebind"


def test_pools_are_granted_not_self_asserted(ws: Workspace) -> None:
    member = sim(ws, "a-1", pools=["agent-a"])
    assert member.register(tags=["agent-a"]).status_code == 200
    intruder = sim(ws, "b-1", pools=[])
    response = intruder.register(tags=["agent-a"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "tags_not_granted"
    assert response.json["error"]["details"]["tags"] == ["agent-a"]
    assert intruder.register(tags=[]).status_code == 200
    job = ws.client.post("/trigger-script", headers=ws.headers,
                         json={"pool": "agent-a", "run_script": "hello.sh"})
    assert job.status_code == 202
    assert intruder.poll_jobs() == [] and len(member.poll_jobs()) == 1
    grant = ws.client.patch(f"/auth/api-keys/{key_id(ws, 'b-1')}", headers=ws.user["headers"],
                            json={"pools": ["agent-a"]})
    assert grant.status_code == 200 and grant.json["pools"] == ["agent-a"]
    assert intruder.register(tags=["agent-a"]).status_code == 200


def test_pools_given_at_key_creation_and_empty_patch_refused(ws: Workspace) -> None:
    created = ws.client.post("/auth/api-keys", headers=ws.user["headers"],
                             json={"name": "edge", "scope": "agent", "pools": ["edge"]})
    assert created.status_code == 201 and created.json["pools"] == ["edge"]
    assert SimAgent(ws.client, created.json["key"], "edge-1").register(
        tags=["edge"]).status_code == 200
    operator_pools = ws.client.post("/auth/api-keys", headers=ws.user["headers"],
                                    json={"name": "x", "scope": "operator", "pools": ["a"]})
    assert operator_pools.status_code == 422
    empty = ws.client.patch(f"/auth/api-keys/{created.json['id']}", headers=ws.user["headers"],
                            json={})
    assert empty.status_code == 422 and "at least one field" in empty.json["error"]["message"]
    assert ws.client.patch(f"/auth/api-keys/{created.json['id']}",
                           headers=bearer("sm_live_nope"), json={}).status_code == 401
