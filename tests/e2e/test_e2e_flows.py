"""Flow jobs end to end: a real hub, real agents running the flow engine, a real local service.

The service answers a body carrying a secret marker: "no raw data leaves" is
checked on everything the hub keeps (GET /jobs JSON and raw rows of jobs and
job_steps).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from orchestrator.extensions import db
from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FINISHED = ("success", "failed", "timeout", "cancelled", "expired")
MARKER = "SECRET-ROW-7f3a9c"

PROBE_FLOW = """
flow:
  name: probe
  steps:
    - id: fetch
      action: http_request
      config: {url: "${service_url}/accounts"}
      assert: ["status == 200", "body.count == 2"]
      output: {count: body.count}
    - id: leak_check
      action: assert
      config:
        expressions:
          - "fetch.body.secret == 'nope'"
          - "fetch.headers['x-secret'] contains 'nope'"
      on_error: continue
    - id: secret_compare
      action: http_request
      config: {url: "${service_url}/accounts"}
      assert: ["body.secret == 'nope'"]
      on_error: continue
    - id: pause
      action: delay
      config: {duration: "${pause}"}
    - id: say
      action: log
      config: {message: "accounts=${count}"}
"""

SLEEPY_FLOW = """
flow:
  name: sleepy
  steps:
    - id: nap
      action: delay
      config: {duration: 60s}
"""


class SecretService(BaseHTTPRequestHandler):
    """Answers every GET with a JSON body that must never reach the hub."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"count": 2, "secret": MARKER, "rows": [{"ssn": MARKER}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Secret", MARKER)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def service_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecretService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def job(hub: LiveHub, token: str, job_id: str) -> dict[str, Any]:
    status, body = hub.call("GET", f"/jobs/{job_id}", token)
    assert status == 200, body
    return body


def wait_job(hub: LiveHub, token: str, job_id: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(lambda: (found := job(hub, token, job_id))["status"] in FINISHED and found,
                    timeout, what=f"job {job_id} finished")


def add_flows(hub: LiveHub, token: str, agent: AgentProc, flows: dict[str, str]) -> None:
    """Write flow files into the agent's SCRIPTS_DIR, whitelist them, wait for the hub."""
    manifest = agent.manifest()
    for name, text in flows.items():
        (agent.scripts_dir / "flows" / f"{name}.yaml").write_text(text)
        manifest["flows"].append({"name": name, "path": f"flows/{name}.yaml",
                                  "description": f"{name} (test)"})
    agent.write_manifest(manifest)

    def listed() -> bool:
        _, body = hub.call("GET", f"/get-scripts?agent={agent.name}", token)
        return set(flows) <= {entry["name"] for entry in body.get("flows", [])}

    wait_for(listed, 15, what=f"flows of {agent.name} on the hub")


def trigger_flow(hub: LiveHub, token: str, agent: str, flow: str, **extra: Any) -> str:
    status, body = hub.call("POST", "/trigger-script", token,
                            {"agent": agent, "run_flow": flow, **extra})
    assert status == 202, body
    return body["job_id"]


@pytest.fixture
def token(operator: dict[str, Any]) -> str:
    return operator["token"]


@pytest.fixture
def agent(live_hub: LiveHub, operator: dict[str, Any], token: str,
          start_agent: Callable[..., AgentProc]) -> AgentProc:
    started = start_agent("flow-1", operator["agent_key"](), live_hub)
    add_flows(live_hub, token, started, {"probe": PROBE_FLOW, "sleepy": SLEEPY_FLOW})
    return started


def stored_rows(app: Flask, job_id: str) -> str:
    """Every column of the job's row and its steps' rows, as the database holds them."""
    with app.app_context():
        rows = [dict(r) for r in db.session.execute(
            sa.text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).mappings()]
        rows += [dict(r) for r in db.session.execute(
            sa.text("SELECT * FROM job_steps WHERE job_id = :id ORDER BY seq"),
            {"id": job_id}).mappings()]
        db.session.remove()
    assert len(rows) > 1
    return json.dumps(rows, default=str)


def test_flow_runs_on_the_agent_with_steps_streamed_and_no_raw_data_leaving(
        app: Flask, live_hub: LiveHub, token: str, agent: AgentProc, service_url: str) -> None:
    job_id = trigger_flow(live_hub, token, agent.name, "probe",
                          variables={"service_url": service_url, "pause": "3s"})

    def pausing() -> dict[str, Any] | None:
        found = job(live_hub, token, job_id)
        steps = {s["id"]: s["status"] for s in found["steps"]}
        return found if steps.get("pause") == "running" else None

    running = wait_for(pausing, 20, what="the pause step running")
    assert running["status"] == "running"
    assert [s["id"] for s in running["steps"]] == ["fetch", "leak_check", "secret_compare",
                                                   "pause"]
    assert running["steps"][0]["status"] == "passed"

    done = wait_job(live_hub, token, job_id)
    assert done["status"] == "success", done
    assert done["kind"] == "flow" and done["flow"] == "probe" and done["exit_code"] is None
    steps = {s["id"]: s for s in done["steps"]}
    assert [s["id"] for s in done["steps"]] == ["fetch", "leak_check", "secret_compare", "pause",
                                                "say"]
    assert steps["fetch"]["outputs"] == {"count": 2}
    assert [a["passed"] for a in steps["fetch"]["assertions"]] == [True, True]
    assert steps["secret_compare"]["status"] == "failed"
    assert steps["secret_compare"]["assertions"] == [
        {"expression": "body.secret == 'nope'", "passed": False}]
    assert steps["pause"]["duration_ms"] >= 2900
    assert "accounts=2" in done["stdout"] and "[ ok  ] fetch" in done["stdout"]
    # "No raw data leaves": neither the API nor the database holds the service's body
    assert MARKER not in json.dumps(done)
    assert MARKER not in stored_rows(app, job_id)


def test_stored_event_order_follows_the_engine(
        app: Flask, live_hub: LiveHub, token: str, agent: AgentProc, service_url: str) -> None:
    job_id = trigger_flow(live_hub, token, agent.name, "probe",
                          variables={"service_url": service_url, "pause": "0s"})
    assert wait_job(live_hub, token, job_id)["status"] == "success"
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT step_id, seq, last_seq FROM job_steps WHERE job_id = :id ORDER BY seq"),
            {"id": job_id}).all()
        db.session.remove()
    # each step: started (seq) then finished (last_seq = seq + 1), one after another
    assert [r.step_id for r in rows] == ["fetch", "leak_check", "secret_compare", "pause", "say"]
    assert [(r.seq, r.last_seq) for r in rows] == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]


def test_example_health_flow_checks_the_hub(
        live_hub: LiveHub, token: str, agent: AgentProc) -> None:
    done = wait_job(live_hub, token, trigger_flow(live_hub, token, agent.name, "health"))
    assert done["status"] == "success", done
    [check, report] = done["steps"]
    assert check["id"] == "hub_health" and check["status"] == "passed"
    assert set(check["outputs"]) == {"hub_version", "response_ms"}
    assert report["action"] == "log" and "healthy" in done["stdout"]


def test_unlisted_flow_is_refused_by_the_hub(
        live_hub: LiveHub, token: str, agent: AgentProc) -> None:
    status, body = live_hub.call("POST", "/trigger-script", token,
                                 {"agent": agent.name, "run_flow": "drop_tables"})
    assert status == 403
    assert body["error"]["code"] == "flow_not_in_manifest"
    assert body["error"]["details"] == {"flow": "drop_tables", "agent": agent.name}


def test_cancel_stops_a_running_flow(
        live_hub: LiveHub, token: str, agent: AgentProc) -> None:
    job_id = trigger_flow(live_hub, token, agent.name, "sleepy")
    wait_for(lambda: job(live_hub, token, job_id)["steps"], 20, what="the nap step started")
    status, _ = live_hub.call("POST", f"/jobs/{job_id}/cancel", token)
    assert status == 202
    done = wait_job(live_hub, token, job_id, timeout=15)
    assert done["status"] == "cancelled", done
    assert done["steps"][0]["status"] == "failed" and "cancelled" in done["steps"][0]["error"]


def test_a_flow_fans_out_across_two_agents(
        live_hub: LiveHub, operator: dict[str, Any], token: str, agent: AgentProc,
        start_agent: Callable[..., AgentProc], service_url: str) -> None:
    """One fan-out call runs the same flow on two agents, one job each."""
    second = start_agent("flow-2", operator["agent_key"](), live_hub)
    add_flows(live_hub, token, second, {"probe": PROBE_FLOW})
    variables = {"service_url": service_url, "pause": "1s"}
    status, body = live_hub.call("POST", "/trigger-script", token, {
        "agents": [agent.name, second.name], "run_flow": "probe", "variables": variables})
    assert status == 202, body
    assert body["skipped"] == [] and body["fanout_id"].startswith("fan_")
    job_ids = {row["agent"]: row["job_id"] for row in body["jobs"]}
    assert sorted(job_ids) == sorted([agent.name, second.name])
    done = {name: wait_job(live_hub, token, job_id) for name, job_id in job_ids.items()}
    for name, found in done.items():
        assert found["status"] == "success" and found["agent"] == name, found
        assert [s["status"] for s in found["steps"]] == ["passed", "failed", "failed", "passed",
                                                         "passed"]
        assert MARKER not in json.dumps(found)
