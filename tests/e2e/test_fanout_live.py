"""Fan-out end to end: a live hub (gunicorn + gevent) and several real agent processes.

Selection by names and tags, offline agents skipped, max_concurrency checked
from the recorded start and end times, max_errors, a failing canary, the
result diff, pools, and the product docs' own bash + curl + jq fan-out loop.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FAILING_DEPLOY = "#!/usr/bin/env bash\necho \"deploy of ${version} failed\"\nexit 4\n"


def fan_out(hub: LiveHub, token: str, expect: int = 202, **body: Any) -> dict[str, Any]:
    body.setdefault("run_script", "deploy.sh")
    body.setdefault("params", {"version": "v2.4.1"})
    status, answer = hub.call("POST", "/fanouts", token, body)
    assert status == expect, answer
    return answer


def report(hub: LiveHub, token: str, fanout_id: str) -> dict[str, Any]:
    status, body = hub.call("GET", f"/fanouts/{fanout_id}", token)
    assert status == 200, body
    return body


def wait_done(hub: LiveHub, token: str, fanout_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(lambda: (found := report(hub, token, fanout_id))["done"] and found,
                    timeout, what=f"fan-out {fanout_id} done")


def start_fleet(hub: LiveHub, operator: dict[str, Any], start_agent: Callable[..., AgentProc],
                tags: dict[str, str]) -> dict[str, AgentProc]:
    """Start one real agent per name (``AGENT_TAGS`` as given), all before waiting."""
    agents = {name: start_agent(name, operator["agent_key"](), hub, wait=False,
                                AGENT_TAGS=agent_tags) for name, agent_tags in tags.items()}
    for agent in agents.values():
        wait_for(agent.registered, 30, what=f"agent {agent.name} registered")
    return agents


def break_deploy(agent: AgentProc) -> None:
    """Make this agent's copy of deploy.sh fail (the manifest stays the same)."""
    (agent.scripts_dir / "deploy.sh").write_text(FAILING_DEPLOY)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def max_overlap(rows: list[dict[str, Any]]) -> int:
    """The most jobs running at one instant, from their recorded started_at/completed_at."""
    edges = sorted([(moment(r["started_at"]), 1) for r in rows if r["started_at"]]
                   + [(moment(r["completed_at"]), -1) for r in rows if r["started_at"]])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_selection_by_names_and_tags_skips_offline_agents(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agents = start_fleet(live_hub, operator, start_agent, {
        "prod-us-east": "production,us", "prod-eu-west": "production,eu",
        "prod-eu-north": "production,eu", "staging-1": "staging"})
    agents["prod-eu-north"].stop()
    wait_for(lambda: live_hub.call("GET", "/agents", token)[1]["prod-eu-north"]["status"]
             == "offline", 20, what="prod-eu-north offline")

    by_tags = fan_out(live_hub, token, tags=["production", "eu"])
    assert [j["agent"] for j in by_tags["jobs"]] == ["prod-eu-west"]
    assert by_tags["skipped"] == [{"agent": "prod-eu-north", "reason": "offline"}]
    by_names = fan_out(live_hub, token, agents=["staging-1", "prod-us-east", "prod-eu-north"])
    assert [j["agent"] for j in by_names["jobs"]] == ["staging-1", "prod-us-east"]
    assert by_names["skipped"] == [{"agent": "prod-eu-north", "reason": "offline"}]

    for created in (by_tags, by_names):
        done = wait_done(live_hub, token, created["fanout_id"])
        assert done["status"] == "success", done
        assert done["skipped"] == created["skipped"]
        for row in done["agents"]:
            status, job = live_hub.call("GET", f"/jobs/{row['job_id']}", token)
            assert job["agent"] == row["agent"] and "v2.4.1 is live" in job["stdout"]
    assert "prod-eu-north" not in str(report(live_hub, token, by_names["fanout_id"])["agents"])


def test_max_concurrency_is_never_exceeded(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {f"node-{i}": "fleet" for i in range(4)})
    created = fan_out(live_hub, token, tags=["fleet"], max_concurrency=2)
    done = wait_done(live_hub, token, created["fanout_id"])
    assert done["counts"]["success"] == 4, done
    assert max_overlap(done["agents"]) == 2, done["agents"]
    order = sorted(done["agents"], key=lambda r: r["started_at"])
    # The first window is released together; which of its two starts first is a race.
    assert {r["agent"] for r in order[:2]} == {"node-0", "node-1"}


def test_max_errors_cancels_the_rest(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {f"node-{i}": "fleet" for i in range(4)})
    created = fan_out(live_hub, token, tags=["fleet"], run_script="fail.sh", params={},
                      max_concurrency=1, max_errors=1)
    done = wait_done(live_hub, token, created["fanout_id"])
    assert done["stop_reason"] == "max_errors" and done["status"] == "failed"
    assert [(r["status"], r["exit_code"], r["error"]) for r in done["agents"]] == [
        ("failed", 3, "exit code 3"), ("failed", 3, "exit code 3"),
        ("cancelled", None, "max_errors"), ("cancelled", None, "max_errors")]


def test_a_failing_canary_stops_the_next_stage(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agents = start_fleet(live_hub, operator, start_agent, {
        "staging-1": "staging", "prod-us-east": "production", "prod-eu-west": "production"})
    stages = [{"agents": ["staging-1"]}, {"tags": ["production"], "max_concurrency": 1}]
    good = wait_done(live_hub, token, fan_out(live_hub, token, stages=stages)["fanout_id"])
    assert good["status"] == "success"
    assert [s["state"] for s in good["stages"]] == ["succeeded", "succeeded"]
    canary_end = moment(good["agents"][0]["completed_at"])
    assert all(moment(r["started_at"]) >= canary_end for r in good["agents"][1:])

    break_deploy(agents["staging-1"])
    bad = wait_done(live_hub, token, fan_out(live_hub, token, stages=stages)["fanout_id"])
    assert bad["status"] == "failed" and bad["stop_reason"] == "stage_failed"
    assert [s["state"] for s in bad["stages"]] == ["failed", "cancelled"]
    assert [(r["agent"], r["status"], r["error"]) for r in bad["agents"]] == [
        ("staging-1", "failed", "exit code 4"), ("prod-eu-west", "cancelled", "stage_failed"),
        ("prod-us-east", "cancelled", "stage_failed")]
    assert all(r["started_at"] is None for r in bad["agents"][1:]), "production never ran"


def test_the_diff_groups_identical_outputs(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agents = start_fleet(live_hub, operator, start_agent,
                         {f"node-{i}": "fleet" for i in range(4)})
    break_deploy(agents["node-2"])
    created = fan_out(live_hub, token, tags=["fleet"])
    done = wait_done(live_hub, token, created["fanout_id"])
    first, second = done["diff"]
    assert (first["count"], first["status"], first["exit_code"]) == (3, "success", 0)
    assert first["agents"] == ["node-0", "node-1", "node-3"]
    assert "v2.4.1 is live" in first["stdout"]
    assert (second["count"], second["status"], second["exit_code"], second["agents"]) == (
        1, "failed", 4, ["node-2"])
    assert second["stdout"] == "deploy of v2.4.1 failed\n"


def test_pool_jobs_run_once_each_on_one_agent(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc]) -> None:
    token = operator["token"]
    agents = start_fleet(live_hub, operator, start_agent,
                         {"worker-1": "builders", "worker-2": "builders", "other": "misc"})
    job_ids = []
    for _ in range(4):  # both builders are idle in a long-poll: they race for each job
        status, body = live_hub.call("POST", "/trigger-script", token,
                                     {"pool": "builders", "run_script": "hello.sh"})
        assert status == 202, body
        job_ids.append(body["job_id"])
    jobs = [wait_for(lambda j=job_id: (found := live_hub.call("GET", f"/jobs/{j}", token)[1])
                     ["status"] == "success" and found, 30, what=f"pool job {job_id}")
            for job_id in job_ids]
    assert all(job["agent"] in ("worker-1", "worker-2") for job in jobs)
    assert all(job["dispatch_count"] == 1 and job["pool"] == "builders" for job in jobs)
    for job in jobs:
        ran_on = [name for name, agent in agents.items() if job["job_id"] in agent.output()]
        assert ran_on == [job["agent"]], f"{job['job_id']} ran on {ran_on}"


SEED_FANOUT_LOOP = r'''
# 1. Get all online production agents
AGENTS=$(curl -s https://api.getscriptmesh.com/agents \
-H "Authorization: Bearer $TOKEN" | \
jq -r 'to_entries[] | select(.value.status=="online") |
select(.value.tags[] | contains("production")) | .key')
# 2. Fan out — fire all in parallel, collect job IDs
JOB_IDS=()
for AGENT in $AGENTS; do
JOB_ID=$(curl -s -X POST https://api.getscriptmesh.com/trigger-script \
-H "Authorization: Bearer $TOKEN" \
-H "Content-Type: application/json" \
-d "{
\"agent\": \"$AGENT\",
\"run_script\": \"deploy.sh\",
\"params\": { \"version\": \"v2.4.1\" },
\"async_exec\": true
}" | jq -r '.job_id')
JOB_IDS+=("$JOB_ID")
echo "Triggered $AGENT → $JOB_ID"
done
# 3. Wait and check all results
for JOB_ID in "${JOB_IDS[@]}"; do
STATUS=$(curl -s https://api.getscriptmesh.com/jobs/$JOB_ID \
-H "Authorization: Bearer $TOKEN" | jq -r '.status')
echo "$JOB_ID: $STATUS"
done
'''


@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")),
                    reason="the seed's fan-out loop needs jq and curl on PATH")
def test_the_seed_bash_curl_jq_fan_out_loop(
        live_hub: LiveHub, operator: dict[str, Any],
        start_agent: Callable[..., AgentProc], tmp_path: Path) -> None:
    token = operator["token"]
    start_fleet(live_hub, operator, start_agent, {
        "prod-us-east": "production,backend", "prod-eu-west": "production",
        "staging-1": "staging"})
    script = tmp_path / "fanout.sh"
    script.write_text(SEED_FANOUT_LOOP.replace("https://api.getscriptmesh.com", "$URL"))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "URL": live_hub.url, "TOKEN": token})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    triggered = {line.split()[1]: line.split()[-1] for line in lines
                 if line.startswith("Triggered ")}
    assert sorted(triggered) == ["prod-eu-west", "prod-us-east"], done.stdout
    assert all(job_id.startswith("job_") for job_id in triggered.values())
    for job_id in triggered.values():
        assert any(line.startswith(f"{job_id}: ") for line in lines)
        final = wait_for(lambda j=job_id: (found := live_hub.call("GET", f"/jobs/{j}", token)[1])
                         ["status"] == "success" and found, 30, what=f"job {job_id}")
        assert "v2.4.1 is live" in final["stdout"]
