"""Security end to end: a live hub refuses a bad result body and the agent still ends the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.client import HubClient
from agent.reporter import ResultReporter
from agent.spool import Spool
from tests.e2e.conftest import LiveHub
from tests.e2e.proc_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_refused_result_does_not_leave_the_job_running(
        live_hub: LiveHub, operator: dict[str, Any], tmp_path: Path) -> None:
    client = HubClient(live_hub.url, operator["agent_key"](), "sec-1")
    client.register({"agent_name": "sec-1", "tags": [], "manifest": {
        "scripts": [{"name": "hello.sh", "params": []}], "flows": []}})
    status, body = live_hub.call("POST", "/trigger-script", operator["token"],
                                 {"agent": "sec-1", "run_script": "hello.sh"})
    assert status == 202, body
    job_id = body["job_id"]
    (assignment,) = wait_for(lambda: client.poll(1, 1), 10, what="the job to be polled")
    client.start_job(assignment["job_id"])
    reporter = ResultReporter(client, Spool(tmp_path / "spool"))
    overflowing = {"status": "success", "exit_code": 2**40, "stdout": "ok", "stderr": "",
                   "truncated": {}, "duration_ms": 5, "started_at": None, "error": None}
    assert reporter.report(job_id, overflowing)
    status, job = live_hub.call("GET", f"/jobs/{job_id}", operator["token"])
    assert job["status"] == "failed", job
    assert job["error"].startswith("result_refused_by_hub: validation_error")
    assert reporter.spool.job_ids() == []
