"""AI providers and Git integrations end to end: a live hub, a real agent, a real
``scriptmesh worker``, and loopback stubs speaking each provider's and host's API."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import git_payloads as gp
from tests.api_stubs import (
    anthropic_stub,
    gitea_stub,
    github_stub,
    gitlab_stub,
    ollama_stub,
    openai_stub,
)
from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import BIN, Proc, process_env, wait_for
from tests.e2e.test_e2e_flows import add_flows, wait_job

#: Loopback stubs are allowed through the hub's existing switch for private targets.
LOOPBACK_OK = {"WEBHOOK_BLOCK_PRIVATE": "false"}
ENV_KEY = "sk-ant-env-key-0123456789abcdef"
TENANT_KEY = "sk-ant-tenant-key-abcdef0123456789"
SECRET = "e2e-webhook-secret"
TOKEN = "glpat-e2eWriteBackToken01234"
CI_FLOW = """
flow:
  name: ci
  steps:
    - id: announce
      action: log
      config: {message: "building ${repo}@${branch} (${sha}) pr=${pr}"}
"""
LEAKY_SCRIPT = """#!/usr/bin/env bash
echo "connecting with token $api_token"
echo "POST https://hooks.slack.com/services/T0/B0/e2e-slack-secret-path -> 500" >&2
echo "password=correct-horse-battery" >&2
exit 2
"""


@pytest.fixture
def start_worker(hub_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """``start_worker(**settings)``: a real ``scriptmesh worker``; stopped at the end."""
    procs: list[Proc] = []

    def start(**settings: str) -> Proc:
        proc = Proc([str(BIN / "scriptmesh"), "worker"], process_env(hub_env, **settings),
                    tmp_path / f"worker-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.send(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        proc.stop()


def call(hub: LiveHub, method: str, path: str, token: str, body: Any = None,
         expect: int = 200) -> Any:
    status, answer = hub.call(method, path, token, body)
    assert status == expect, (status, answer)
    return answer


def post_hook(hub: LiveHub, integration_id: str, body: bytes,
              headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(f"{hub.url}/hooks/git/{integration_id}", data=body,
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ai_body(provider: str, url: str, key: str | None, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "ai_provider", "provider": provider, "name": provider,
                            "config": {"model": model, "base_url": url, "max_tokens": 800}}
    if key:
        body["secrets"] = {"api_key": key}
    return body


def declare_git_params(agent: AgentProc, hub: LiveHub, token: str) -> None:
    """hello.sh asks for the Git inputs (a script gets only the params it declares)."""
    manifest = agent.manifest()
    for entry in manifest["scripts"]:
        if entry["name"] == "hello.sh":
            entry["params"] = [*entry.get("params", []),
                               *({"name": n} for n in ("repo", "branch", "sha", "pr"))]
    agent.write_manifest(manifest)

    def declared() -> bool:
        _, body = hub.call("GET", f"/get-scripts?agent={agent.name}", token)
        hello = [e for e in body.get("scripts", []) if e["name"] == "hello.sh"]
        return bool(hello) and "branch" in {p["name"] for p in hello[0].get("params", [])}

    wait_for(declared, 15, what="hello.sh declaring the Git inputs")


def add_leaky_script(agent: AgentProc, hub: LiveHub, token: str) -> None:
    script = agent.scripts_dir / "leaky.sh"
    script.write_text(LEAKY_SCRIPT)
    script.chmod(0o755)
    manifest = agent.manifest()
    manifest["scripts"].append({"name": "leaky.sh", "path": "leaky.sh",
                                "description": "echoes secrets, fails",
                                "params": [{"name": "api_token"}]})
    agent.write_manifest(manifest)

    def listed() -> bool:
        _, body = hub.call("GET", f"/get-scripts?agent={agent.name}", token)
        return "leaky.sh" in {entry["name"] for entry in body.get("scripts", [])}

    wait_for(listed, 15, what="leaky.sh on the hub")


def test_ai_chain_test_call_and_redacted_diagnosis(
        start_hub: Callable[..., LiveHub], maintenance: Any, start_worker: Callable[..., Proc],
        start_agent: Callable[..., AgentProc], operator: dict[str, Any], make_user: Any,
        make_api_key: Any) -> None:
    admin_key = make_api_key(make_user(admin=True)["user_id"], scope="admin")
    owner_key = make_api_key(operator["user_id"], scope="admin")
    token = operator["token"]
    with anthropic_stub() as env_stub, anthropic_stub() as tenant_stub, \
            openai_stub() as openai, ollama_stub() as ollama:
        env = {**LOOPBACK_OK, "ANTHROPIC_API_KEY": ENV_KEY, "ANTHROPIC_BASE_URL": env_stub.url}
        hub = start_hub(**env)
        start_worker(**env)

        def source(task: str = "diagnosis") -> tuple[str, str | None]:
            found = call(hub, "GET", f"/ai-config/resolve?task={task}", token)
            return found["source"], found["integration_id"]

        assert source() == ("environment", None)
        shared = call(hub, "POST", "/admin/integrations", admin_key,
                      ai_body("ollama", ollama.url, None, "llama3.1"), 201)
        assert source() == ("global_integration", shared["id"])
        tested = call(hub, "POST", f"/admin/integrations/{shared['id']}/test", admin_key)
        assert tested["status"] == "ok" and tested["integration"]["last_test_at"]
        assert ollama.calls[-1].path == "/api/chat"
        default = call(hub, "POST", "/admin/integrations", admin_key,
                       ai_body("openai", openai.url + "/v1", "sk-global-openai-key-1234",
                               "gpt-4o"), 201)
        call(hub, "PUT", "/admin/ai-config", admin_key, {"default_provider": default["id"]})
        assert source() == ("global_default", default["id"])
        own = call(hub, "POST", "/integrations", owner_key,
                   ai_body("openai", openai.url + "/v1", "sk-tenant-openai-key-5678",
                           "gpt-4o-mini"), 201)
        assert source() == ("tenant_integration", own["id"])
        override = call(hub, "POST", "/integrations", owner_key,
                        ai_body("anthropic", tenant_stub.url, TENANT_KEY,
                                "claude-sonnet-4-5"), 201)
        call(hub, "PUT", "/ai-config", owner_key, {"default_provider": own["id"]})
        assert source() == ("tenant_default", own["id"])
        call(hub, "PUT", "/ai-config", owner_key, {
            "default_provider": own["id"],
            "agent_overrides": [{"agent_name": "diagnosis", "integration_id": override["id"]}]})
        assert source() == ("override", override["id"])
        assert source("repair") == ("tenant_default", own["id"])
        refused = hub.call("PUT", "/ai-config", owner_key, {"agent_overrides": [
            {"agent_name": "generation", "integration_id": own["id"]}]})
        assert refused[0] == 422 and refused[1]["error"]["details"]["implemented"] == [
            "diagnosis", "repair", "flakiness"]

        call(hub, "POST", "/integrations", owner_key, {
            "type": "slack", "name": "ops", "config": {"events": ["agent.offline"]},
            "secrets": {"webhook_url":
                        "https://hooks.slack.com/services/T0/B0/e2e-slack-secret-path"}}, 201)
        agent = start_agent("ai-1", operator["agent_key"](), hub)
        add_leaky_script(agent, hub, token)
        job_id = call(hub, "POST", "/trigger-script", token, {
            "agent": agent.name, "run_script": "leaky.sh",
            "params": {"api_token": "param-value-secret-42"}}, 202)["job_id"]
        assert wait_job(hub, token, job_id)["status"] == "failed"
        call(hub, "POST", f"/jobs/{job_id}/diagnose", token, None, 202)
        done = wait_for(lambda: call(hub, "GET", f"/jobs/{job_id}", token)["diagnosis"], 30,
                        what="diagnosis stored by the worker")

    assert env_stub.calls == [] and len(tenant_stub.calls) == 1
    request = tenant_stub.calls[0]
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == TENANT_KEY
    assert request.json["model"] == "claude-sonnet-4-5" and request.json["max_tokens"] == 800
    sent = request.body.decode()
    for secret in ("param-value-secret-42", "e2e-slack-secret-path", "correct-horse-battery"):
        assert secret not in sent, secret
    context = json.loads(request.json["messages"][0]["content"])
    assert context["script"] == "leaky.sh" and context["exit_code"] == 2
    assert context["param_names"] == ["api_token"]
    assert "connecting with token [REDACTED]" in context["stdout_tail"]
    assert context["stderr_tail"].count("[REDACTED]") == 2
    assert done["provider"] == "anthropic" and done["model"] == "claude-sonnet-4-5"
    assert done["summary"] and done["likely_cause"] and done["suggested_fix"]


def jobs_count(hub: LiveHub, token: str) -> int:
    return len(call(hub, "GET", "/jobs?limit=500", token)["jobs"])


def git_body(provider: str, url: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"type": "git", "provider": provider, "name": f"{provider}-ci",
            "config": {"repo": gp.REPO, "base_url": url, "branches": ["main"],
                       "trigger": trigger},
            "secrets": {"token": TOKEN, "webhook_secret": SECRET}}


def test_git_webhooks_trigger_runs_whose_results_land_on_each_host(
        start_hub: Callable[..., LiveHub], maintenance: Any, start_worker: Callable[..., Proc],
        start_agent: Callable[..., AgentProc], operator: dict[str, Any],
        make_api_key: Any) -> None:
    owner_key = make_api_key(operator["user_id"], scope="admin")
    token = operator["token"]
    hub = start_hub(**LOOPBACK_OK)
    start_worker(**LOOPBACK_OK)
    agent = start_agent("git-1", operator["agent_key"](), hub)
    add_flows(hub, token, agent, {"ci": CI_FLOW})
    with github_stub() as github, gitlab_stub() as gitlab, gitea_stub() as gitea:
        hub_id = call(hub, "POST", "/integrations", owner_key, git_body(
            "github", github.url, {"agent": agent.name, "run_flow": "ci"}), 201)["id"]
        body = gp.encode(gp.github_push())
        bad = post_hook(hub, hub_id, body, gp.github_headers("push", body, "wrong"))
        assert bad[0] == 401 and jobs_count(hub, token) == 0
        status, answer = post_hook(hub, hub_id, body, gp.github_headers("push", body, SECRET))
        assert status == 202, answer
        done = wait_job(hub, token, answer["job_id"])
        assert done["status"] == "success" and done["variables"]["sha"] == gp.SHA
        [pushed] = wait_for(lambda: github.find("POST", "/statuses/"), 30,
                            what="GitHub commit status")
        assert pushed.path == f"/repos/{gp.REPO}/statuses/{gp.SHA}"
        assert pushed.json["state"] == "success"
        assert pushed.json["context"] == "scriptmesh/github-ci"
        body = gp.encode(gp.github_pull_request())
        status, answer = post_hook(hub, hub_id, body,
                                   gp.github_headers("pull_request", body, SECRET))
        assert status == 202, answer
        [comment] = wait_for(lambda: github.find("POST", "/issues/42/comments"), 30,
                             what="PR comment")
        assert "| announce | log | passed |" in comment.json["body"]

        declare_git_params(agent, hub, token)
        for provider, stub, prefix in (("gitlab", gitlab, "/api/v4/projects/"),
                                       ("gitea", gitea, "/api/v1/repos/")):
            integration = call(hub, "POST", "/integrations", owner_key, git_body(
                provider, stub.url, {"agent": agent.name, "run_script": "hello.sh"}), 201)
            before = jobs_count(hub, token)
            if provider == "gitlab":
                body = gp.encode(gp.gitlab_push())
                wrong = gp.gitlab_headers("Push Hook", "wrong")
                right = gp.gitlab_headers("Push Hook", SECRET)
            else:
                body = gp.encode(gp.github_push())
                wrong = gp.gitea_headers("push", body, "wrong")
                right = gp.gitea_headers("push", body, SECRET)
            assert post_hook(hub, integration["id"], body, wrong)[0] == 401
            assert jobs_count(hub, token) == before
            status, answer = post_hook(hub, integration["id"], body, right)
            assert status == 202, answer
            assert wait_job(hub, token, answer["job_id"])["params"]["branch"] == "main"
            [written] = wait_for(lambda stub=stub: stub.find("POST", "/statuses/"), 30,
                                 what=f"{provider} commit status")
            assert written.path.startswith(prefix) and written.path.endswith(gp.SHA)
            assert written.json["state"] == "success"
