"""Live job output over real HTTP: GET /jobs/{id}/logs (text and SSE), ?wait=, /agents filters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import AgentProc, LiveHub

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def trigger(hub: LiveHub, token: str, agent: str, script: str, **params: str) -> str:
    status, body = hub.call("POST", "/trigger-script", token,
                            {"agent": agent, "run_script": script, "params": params})
    assert status == 202, body
    return body["job_id"]


def sse_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Parse an event stream into ``{event, id, data}`` dicts (comments as ``comment``)."""
    event: dict[str, Any] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value


def follow(hub: LiveHub, token: str, job_id: str, **headers: str) -> requests.Response:
    response = requests.get(f"{hub.url}/jobs/{job_id}/logs", params={"follow": "true"},
                            headers={"Authorization": f"Bearer {token}", **headers},
                            stream=True, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


@pytest.fixture
def agent(live_hub: LiveHub, operator: dict[str, Any],
          start_agent: Callable[..., AgentProc]) -> AgentProc:
    return start_agent("logs-1", operator["agent_key"](), live_hub)


def test_follow_streams_output_before_the_job_ends_then_resumes_exactly(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    job_id = trigger(live_hub, token, agent.name, "sleep.sh", seconds="3")
    events = sse_events(follow(live_hub, token, job_id))
    first = next(e for e in events if e.get("event") == "output")
    assert first["data"]["stream"] == "stdout" and first["data"]["offset"] == 0
    assert "child_pid=" in first["data"]["data"]
    status, body = live_hub.call("GET", f"/jobs/{job_id}", token)
    assert body["status"] == "running", body  # the line came while the script still ran
    rest = list(events)
    end = next(e for e in rest if e.get("event") == "end")
    assert end["data"]["status"] == "success" and end["data"]["exit_code"] == 0
    streamed = first["data"]["data"] + "".join(
        e["data"]["data"] for e in rest if e.get("event") == "output"
        and e["data"]["stream"] == "stdout")
    final = live_hub.call("GET", f"/jobs/{job_id}", token)[1]
    assert streamed == final["stdout"] and "done sleeping" in streamed

    # A reconnect after the first chunk gets exactly the rest, by header or by ?after=.
    resumed = list(sse_events(follow(live_hub, token, job_id, **{"Last-Event-ID": first["id"]})))
    again = "".join(e["data"]["data"] for e in resumed if e.get("event") == "output")
    assert first["data"]["data"] + again == final["stdout"]
    assert resumed[-1]["event"] == "end"
    text = requests.get(f"{live_hub.url}/jobs/{job_id}/logs",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert text.text == final["stdout"]


def test_wait_long_polls_until_the_job_ends(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    job_id = trigger(live_hub, token, agent.name, "sleep.sh", seconds="2")
    started = time.monotonic()
    status, body = live_hub.call("GET", f"/jobs/{job_id}?wait=0.5", token)
    assert status == 200 and body["status"] in ("pending", "running")
    assert time.monotonic() - started >= 0.4
    status, body = live_hub.call("GET", f"/jobs/{job_id}?wait=30", token)
    assert status == 200 and body["status"] == "success", body
    assert time.monotonic() - started < 15
    status, body = live_hub.call("GET", f"/jobs/{job_id}?wait=61", token)
    assert status == 422 and body["error"]["code"] == "validation_error"


def test_bad_requests_answer_in_the_error_shape(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    status, body = live_hub.call("GET", "/jobs/job_nope/logs?follow=true", token)
    assert status == 404 and body["error"]["code"] == "job_not_found"
    job_id = trigger(live_hub, token, agent.name, "hello.sh", name="x")
    status, body = live_hub.call("GET", f"/jobs/{job_id}/logs?follow=true&after=x:y", token)
    assert status == 422 and body["error"]["code"] == "validation_error"
    status, body = live_hub.call("GET", f"/jobs/{job_id}/logs?stream=nope", token)
    assert status == 422


def test_agents_filter_by_tag_status_and_name(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc) -> None:
    token = operator["token"]
    assert list(live_hub.call("GET", "/agents?tag=e2e&status=online", token)[1]) == [agent.name]
    assert live_hub.call("GET", "/agents?tag=nope", token)[1] == {}
    assert live_hub.call("GET", "/agents?status=offline", token)[1] == {}
    assert list(live_hub.call("GET", "/agents?name=gs-", token)[1]) == [agent.name]
    status, body = live_hub.call("GET", "/agents?status=sleepy", token)
    assert status == 422 and body["error"]["code"] == "validation_error"
