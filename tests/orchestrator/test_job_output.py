"""GET /jobs/{id}/logs in process: step events of flow jobs, resume cursors, the event format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from orchestrator.services.job_output import Cursor
from tests.orchestrator.agent_sim import Workspace, workspace
from tests.orchestrator.test_flow_jobs import finished, flow_agent, started, trigger_flow


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def events(ws: Workspace, job_id: str, after: str | None = None) -> list[dict[str, Any]]:
    headers = {**ws.headers, **({"Last-Event-ID": after} if after else {})}
    response = ws.client.get(f"/jobs/{job_id}/logs?follow=true", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    found = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                      and not line.startswith(":"))
        if fields:
            found.append({**fields, "data": json.loads(fields["data"])})
    return found


def test_a_finished_flow_streams_its_output_steps_and_end(ws: Workspace) -> None:
    sim = flow_agent(ws)
    job_id = trigger_flow(ws).json["job_id"]
    sim.take(job_id)
    assert sim.output(job_id, stdout=(0, "[start] a\n")).status_code == 200
    assert sim.events(job_id, [started(1, "a"), finished(2, "a"), started(3, "b")]
                      ).status_code == 200
    assert sim.events(job_id, [finished(4, "b", "failed", error="boom")]).status_code == 200
    assert sim.result(job_id, "failed", exit_code=None, stdout="[start] a\n[fail] b\n",
                      error="step b failed").status_code == 200

    found = events(ws, job_id)
    kinds = [e["event"] for e in found]
    assert kinds[0] == "output" and kinds[-1] == "end"
    assert found[0]["id"] == "19:0:0"
    assert found[0]["data"] == {"stream": "stdout", "offset": 0,
                                "data": "[start] a\n[fail] b\n"}
    steps = [e for e in found if e["event"] == "step"]
    assert [(s["data"]["id"], s["data"]["status"], s["id"]) for s in steps] == [
        ("a", "passed", "19:0:2"), ("b", "failed", "19:0:4")]
    shown = ws.job(job_id)["steps"]
    assert [s["data"] for s in steps] == shown  # exactly as GET /jobs/{id} "steps"
    assert found[-1]["data"] == {"status": "failed", "exit_code": None,
                                 "error": "step b failed", "duration_ms": 12}

    resumed = events(ws, job_id, after="10:0:2")
    assert [e["event"] for e in resumed if e["event"] != "status"] == ["output", "step", "end"]
    assert resumed[0]["data"] == {"stream": "stdout", "offset": 10, "data": "[fail] b\n"}
    assert resumed[1]["data"]["id"] == "b"


def test_text_logs_and_tenant_scope(ws: Workspace, make_user: Any, make_api_key: Any) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    sim.output(job_id, stdout=(0, "héllo\n"), stderr=(0, "warn\n"))
    response = ws.client.get(f"/jobs/{job_id}/logs", headers=ws.headers)
    assert response.content_type == "text/plain; charset=utf-8"
    assert response.get_data(as_text=True) == "héllo\n"
    response = ws.client.get(f"/jobs/{job_id}/logs?stream=stderr", headers=ws.headers)
    assert response.get_data(as_text=True) == "warn\n"
    stranger = make_user()
    other = {"Authorization": f"Bearer {make_api_key(stranger['user_id'], scope='read')}"}
    for path in (f"/jobs/{job_id}/logs", f"/jobs/{job_id}/logs?follow=true",
                 f"/jobs/{job_id}?wait=1"):
        response = ws.client.get(path, headers=other)
        assert response.status_code == 404 and response.json["error"]["code"] == "job_not_found"
    assert ws.client.get(f"/jobs/{job_id}/logs").status_code == 401


@pytest.mark.parametrize("raw", ["x", "1", "1:2:3:4", "-1:0", "a:b"])
def test_bad_cursors_are_refused(raw: str) -> None:
    from orchestrator.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        Cursor.parse(raw)


def test_cursor_round_trip() -> None:
    assert Cursor.parse("12:3") == Cursor(12, 3, 0)
    assert Cursor.parse("12:3:9").event_id(True) == "12:3:9"
    assert Cursor.parse(None) == Cursor()
