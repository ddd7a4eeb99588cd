"""TestMesh-syntax flows run unchanged: ``scriptmesh-agent run-flow`` and hub-dispatched jobs.

The flows in ``tests/e2e/testmesh/`` are written in TestMesh's syntax, each in the
spirit of one of its example or seed flows (named in the file's first line), against
real local services: the stub in :mod:`tests.e2e.testmesh_services`, SQLite, the
PostgreSQL database ``$FLOWS_PG_DSN`` and Redis ``$FLOWS_REDIS_URL``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from flask import Flask

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import BIN, wait_for
from tests.e2e.test_e2e_flows import add_flows, job, stored_rows, trigger_flow, wait_job
from tests.e2e.testmesh_services import (
    MARKER,
    StubServices,
    drop_postgres,
    make_postgres,
    make_sqlite,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FLOWS = Path(__file__).parent / "testmesh"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test_flows"
REDIS_URL = "redis://127.0.0.1:6379/1"
SQLITE_FLOWS = ["01_user_registration", "02_place_order", "04_health_checks", "06_user_search",
                "08_checkout", "control_flow_demo", "contract_consumer", "issue_points"]
PG_ONLY_FLOWS = ["03_payment_audit", "05_database_counts", "07_notifications", "10_mock_audit"]


def _env(name: str, default: str) -> str:
    import os

    return os.environ.get(name, default)


@pytest.fixture
def services() -> Iterator[StubServices]:
    stub = StubServices().start()
    yield stub
    stub.stop()


@pytest.fixture
def flows_redis() -> str:
    url = _env("FLOWS_REDIS_URL", REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    return url


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    dsn = _env("FLOWS_PG_DSN", PG_DSN)
    try:
        url = make_postgres(dsn)
    except psycopg.Error:
        pytest.skip(f"no PostgreSQL at {dsn}")
    yield url
    drop_postgres(dsn)


def variables(services: StubServices, db_url: str, redis_url: str = "") -> dict[str, str]:
    return {"USER_SERVICE_URL": services.url, "ORDER_SERVICE_URL": services.url,
            "PAYMENT_SERVICE_URL": services.url, "NOTIFICATION_SERVICE_URL": services.url,
            "TESTMESH_API_URL": services.url, "PROVIDER_BASE_URL": services.url,
            "API_KEY": "k-test", "DB_DSN": db_url, "REDIS_URL": redis_url}


def run_flow(path: Path, values: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    argv = [str(BIN / "scriptmesh-agent"), "run-flow", str(path), *extra]
    for name, value in values.items():
        argv += ["--var", f"{name}={value}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", SQLITE_FLOWS)
def test_testmesh_flows_pass_with_run_flow_on_sqlite(
        name: str, services: StubServices, flows_redis: str, tmp_path: Path) -> None:
    db_url = make_sqlite(str(tmp_path / "shop.db"))
    done = run_flow(FLOWS / f"{name}.yaml", variables(services, db_url, flows_redis))
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed in " in done.stdout and "0 failed, 0 skipped" in done.stdout
    assert MARKER not in done.stdout


@pytest.mark.parametrize("name", SQLITE_FLOWS + PG_ONLY_FLOWS)
def test_testmesh_flows_pass_with_run_flow_on_postgresql(
        name: str, services: StubServices, flows_redis: str, pg_dsn: str) -> None:
    done = run_flow(FLOWS / f"{name}.yaml", variables(services, pg_dsn, flows_redis))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed, 0 skipped" in done.stdout


def test_points_flow_details(services: StubServices, flows_redis: str, tmp_path: Path) -> None:
    done = run_flow(FLOWS / "issue_points.yaml", variables(services, "", flows_redis))
    out = done.stdout
    assert done.returncode == 0, out
    # numbered steps, warnings for unknown keys outside config, outputs never fail a step
    assert "[ ok  ] main_0" in out and "[ ok  ]   branch.branch_then_0" in out
    assert "unknown key 'retry_policy' ignored" in out
    assert "unknown key 'owner_team' kept as metadata" in out
    assert "first_id = 7" in out and "all_ids = [7, 9]" in out and "via_dot = 2" in out
    assert "missing = None" in out and "'$.no.such.path' matched nothing" in out
    assert "[ ok  ]   per_item[1].get_item" in out and "[ ok  ]   sub.login" in out
    assert "status ok, first=7" in out


def test_a_failure_counts_the_rest_as_skipped(services: StubServices, tmp_path: Path) -> None:
    flow = tmp_path / "fails.yaml"
    flow.write_text(yaml.safe_dump({"name": "fails", "steps": [
        {"id": "get", "action": "http_request", "config": {"url": f"{services.url}/api/health"},
         "assert": ["status == '500'"]},
        {"action": "log", "config": {"message": "never"}},
        {"action": "delay", "config": {"duration": "1ms"}}]}))
    done = run_flow(flow, {})
    assert done.returncode == 1
    assert "0 passed, 1 failed, 2 skipped" in done.stdout
    assert "[skip ] main_1: not run: step get failed" in done.stdout


def test_config_typo_is_refused_by_run_flow_and_check_manifest(tmp_path: Path) -> None:
    done = run_flow(FLOWS / "typo_in_config.yaml", {})
    assert done.returncode == 2
    assert "unknown config key 'header' (allowed: auth, body," in done.stdout
    scripts = tmp_path / "scripts"
    (scripts / "flows").mkdir(parents=True)
    (scripts / "flows" / "typo.yaml").write_text((FLOWS / "typo_in_config.yaml").read_text())
    (scripts / "flows" / "bad_action.yaml").write_text(
        "name: bad\nsteps:\n  - {id: x, action: no_such_action}\n")
    (scripts / "flows" / "good.yaml").write_text((FLOWS / "sub_login.yaml").read_text())
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"scripts": [], "flows": [
        {"name": n, "path": f"flows/{n}.yaml"} for n in ("typo", "bad_action", "good")]}))
    checked = subprocess.run(
        [str(BIN / "scriptmesh-agent"), "check-manifest", "--manifest", str(manifest),
         "--scripts-dir", str(scripts)], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 1, checked.stdout
    assert "ok      flow   good" in checked.stdout
    assert "refused flows[typo] refused: step 'fetch'" in checked.stdout
    assert "'no_such_action' is not one of" in checked.stdout
    assert "1 entry ok, 2 refused" in checked.stdout


def test_run_flow_takes_manifest_and_scripts_dir(tmp_path: Path) -> None:
    flow = tmp_path / "with_script.yaml"
    flow.write_text("name: s\nsteps:\n  - {id: hi, action: script, config: {script: hello.sh}}\n")
    repo = Path(__file__).resolve().parents[2]
    done = run_flow(flow, {}, "--manifest", str(repo / "manifests" / "script_manifest.json"),
                    "--scripts-dir", str(repo / "scripts"))
    assert done.returncode == 0, done.stdout + done.stderr


# --- through the hub -------------------------------------------------------------------


@pytest.fixture
def token(operator: dict[str, Any]) -> str:
    return operator["token"]


def dispatch(hub: LiveHub, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return hub.call("POST", "/agent/dispatch", token, body)


def definition(name: str) -> dict[str, Any]:
    return yaml.safe_load((FLOWS / f"{name}.yaml").read_text())


def test_inline_dispatch_runs_testmesh_flows_on_an_opted_in_agent(
        app: Flask, live_hub: LiveHub, operator: dict[str, Any], token: str,
        start_agent: Callable[..., AgentProc], services: StubServices, flows_redis: str,
        tmp_path: Path) -> None:
    agent = start_agent("inline-1", operator["agent_key"](), live_hub, ALLOW_INLINE_FLOWS="true")
    add_flows(live_hub, token, agent, {"sub_login": (FLOWS / "sub_login.yaml").read_text(),
                                       "signup": (FLOWS / "01_user_registration.yaml").read_text()})
    db_url = make_sqlite(str(tmp_path / "shop.db"))
    values = variables(services, db_url, flows_redis)
    status, body = dispatch(live_hub, token, {"flow_id": "flow-points", "agent": agent.name,
                                              "definition": definition("issue_points"),
                                              "variables": values})
    assert status == 202, body
    assert body["status"] == "dispatched" and body["execution_id"] == body["job_id"]
    done = wait_job(live_hub, token, body["job_id"])
    assert done["status"] == "success", (done["error"], done["stdout"][-3000:])
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["fetch"]["outputs"]["first_id"] == 7 and steps["sub.login"]["status"] == "passed"
    assert all(s["status"] == "passed" for s in done["steps"])
    assert "unknown key 'retry_policy' ignored" in done["stdout"]  # warnings reach the job
    # the default agent pick, and a manifest flow in TestMesh syntax triggered the usual way
    status, second = dispatch(live_hub, token, {"definition": definition("02_place_order"),
                                                "variables": values})
    assert status == 202, second
    assert wait_job(live_hub, token, second["job_id"])["status"] == "success"
    third = trigger_flow(live_hub, token, agent.name, "signup", variables=values)
    finished = wait_job(live_hub, token, third)
    assert finished["status"] == "success", finished
    assert {s["id"]: s["outputs"] for s in finished["steps"]}["signup"] == {
        "account_id": "user-042"}
    for job_id in (body["job_id"], second["job_id"], third):
        assert MARKER not in json.dumps(job(live_hub, token, job_id))
        assert MARKER not in stored_rows(app, job_id)


def test_inline_dispatch_is_refused_unless_the_agent_opts_in(
        live_hub: LiveHub, operator: dict[str, Any], token: str,
        start_agent: Callable[..., AgentProc], services: StubServices) -> None:
    plain = start_agent("plain-1", operator["agent_key"](), live_hub)
    status, body = dispatch(live_hub, token, {"agent": plain.name,
                                              "definition": definition("04_health_checks")})
    assert status == 403 and body["error"]["code"] == "inline_flows_not_allowed", body
    status, body = dispatch(live_hub, token, {"definition": definition("04_health_checks")})
    assert status == 422 and body["error"]["code"] == "no_inline_agent", body
    status, body = dispatch(live_hub, token, {"agent": plain.name, "definition": "nope"})
    assert status == 422, body
    inline = start_agent("inline-2", operator["agent_key"](), live_hub, ALLOW_INLINE_FLOWS="true")

    def opted_in() -> bool:
        return dispatch(live_hub, token, {"agent": inline.name, "definition": {
            "name": "scripted", "steps": [
                {"id": "run", "action": "script", "config": {"script": "hello.sh"}}]}})[0] == 202



    wait_for(opted_in, 15, what="the agent's opt-in reported")
    _, jobs = live_hub.call("GET", f"/jobs?agent={inline.name}", token)
    done = wait_job(live_hub, token, jobs["jobs"][0]["job_id"])
    assert done["status"] == "failed"
    assert "script steps are not allowed here" in done["steps"][0]["error"]
    # an inline flow cannot read the agent's environment (its secrets)
    status, body = dispatch(live_hub, token, {"agent": inline.name, "definition": {
        "name": "peek", "steps": [{"id": "env", "action": "log",
                                   "config": {"message": "${env.SCRIPTS_DIR}"}}]}})
    assert status == 202, body
    peek = wait_job(live_hub, token, body["job_id"])
    assert peek["status"] == "failed"
    assert "environment variable SCRIPTS_DIR is not set" in peek["steps"][0]["error"]
