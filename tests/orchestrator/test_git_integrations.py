"""Git integrations: signed webhooks trigger runs, replays and bad signatures run nothing,
results go back as commit statuses and one PR comment (stubs of each host's real API)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import GitDelivery, Job
from tests import git_payloads as gp
from tests.api_stubs import ApiStub, gitea_stub, github_stub, gitlab_stub
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace
from tests.orchestrator.receiver import run_background_jobs

TOKEN = "ghp_writebacktoken0123456789abcdefABCD"
SECRET = "webhook-shared-secret-1"


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def add_git(client: FlaskClient, ws: Workspace, provider: str, stub: ApiStub,
            **config: Any) -> dict[str, Any]:
    body = {"type": "git", "provider": provider, "name": f"{provider}-ci", "config": {
        "repo": gp.REPO, "base_url": stub.url, "events": ["push", "pull_request"],
        "trigger": {"agent": "agent-1", "run_script": "hello.sh"}, **config},
        "secrets": {"token": TOKEN, "webhook_secret": SECRET}}
    response = client.post("/integrations", json=body, headers=ws.user["headers"])
    assert response.status_code == 201, response.json
    assert response.json["secrets"] == {"token": "configured", "webhook_secret": "configured"}
    return response.json


def github_post(client: FlaskClient, integration_id: str, event: str, payload: dict[str, Any],
                secret: str = SECRET, delivery: str | None = None) -> Any:
    body = gp.encode(payload)
    return client.post(f"/hooks/git/{integration_id}", data=body,
                       headers=gp.github_headers(event, body, secret, delivery))


def finish(ws: Workspace, sim: SimAgent, job_id: str, status: str = "success") -> None:
    sim.take(job_id)
    assert sim.result(job_id, status).status_code == 200


def deliveries(app: Flask) -> list[GitDelivery]:
    with app.app_context():
        return list(db.session.execute(db.select(GitDelivery)).scalars())


def test_signed_github_push_runs_the_script_and_posts_the_commit_status(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    sim = ws.agent()
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub, branches=["main", "release/*"])
        response = github_post(client, hook["id"], "push", gp.github_push("release/2.0"))
        assert response.status_code == 202, response.json
        job_id = response.json["job_id"]
        assert response.json["triggered"] is True
        assert ws.job(job_id)["params"] == {"repo": gp.REPO, "branch": "release/2.0",
                                            "sha": gp.SHA, "pr": ""}
        finish(ws, sim, job_id)
        run_background_jobs(app)

    [status] = stub.calls
    assert (status.method, status.path) == ("POST", f"/repos/{gp.REPO}/statuses/{gp.SHA}")
    assert status.headers["Authorization"] == f"Bearer {TOKEN}"
    assert status.headers["Accept"] == "application/vnd.github+json"
    assert status.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert status.json == {"state": "success", "context": "scriptmesh/github-ci",
                           "description": "script hello.sh success on agent-1 in 0.0s"}
    assert [d.state for d in deliveries(app)] == ["reported"]


def test_bad_missing_and_replayed_signatures_run_nothing(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    ws.agent()
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub)
        bad = github_post(client, hook["id"], "push", gp.github_push(), secret="wrong")
        body = gp.encode(gp.github_push())
        unsigned = client.post(f"/hooks/git/{hook['id']}", data=body,
                               headers={"X-GitHub-Event": "push",
                                        "X-GitHub-Delivery": "d-unsigned"})
        push = gp.github_push()
        first = github_post(client, hook["id"], "push", push, delivery="d-1")
        replay = github_post(client, hook["id"], "push", push, delivery="d-1")
        # The delivery id is not signed: a captured body under a fresh id is a replay too.
        renamed = github_post(client, hook["id"], "push", push, delivery="d-2")
        unknown = github_post(client, "int_nope", "push", gp.github_push())

    assert bad.status_code == 401 and bad.json["error"]["code"] == "bad_signature"
    assert unsigned.status_code == 401
    assert first.status_code == 202
    assert replay.status_code == 409 and replay.json["error"]["code"] == "replayed_delivery"
    assert renamed.status_code == 409
    assert unknown.status_code == 404
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Job.id))).scalar() == 1
    assert [d.delivery_id for d in deliveries(app)] == ["d-1"]


def test_unmatched_events_branches_and_repos_are_accepted_but_run_nothing(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub, branches=["main"], events=["push"])
        answers = [github_post(client, hook["id"], "push", gp.github_push("dev")),
                   github_post(client, hook["id"], "push", gp.github_push(repo="other/repo")),
                   github_post(client, hook["id"], "pull_request", gp.github_pull_request()),
                   github_post(client, hook["id"], "ping", {"zen": "Keep it simple."})]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert all(a.json["triggered"] is False for a in answers)
    assert "matches none of main" in answers[0].json["reason"]
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Job.id))).scalar() == 0


def test_pull_request_runs_get_one_comment_updated_on_rerun(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    sim = ws.agent()
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub)
        opened = github_post(client, hook["id"], "pull_request", gp.github_pull_request())
        assert opened.status_code == 202, opened.json
        assert ws.job(opened.json["job_id"])["params"]["pr"] == "42"
        finish(ws, sim, opened.json["job_id"], "failed")
        run_background_jobs(app)
        pushed = github_post(client, hook["id"], "pull_request",
                             gp.github_pull_request("synchronize", sha="a" * 40))
        finish(ws, sim, pushed.json["job_id"])
        run_background_jobs(app)

    statuses = stub.find("POST", "/statuses/")
    assert [s.json["state"] for s in statuses] == ["failure", "success"]
    assert statuses[1].path.endswith("a" * 40)
    [created] = stub.find("POST", "/issues/42/comments")
    [edited] = stub.find("PATCH", "/issues/comments/")
    assert edited.path == f"/repos/{gp.REPO}/issues/comments/1002"
    assert "❌" in created.json["body"] and "✅" in edited.json["body"]
    assert "script hello.sh success on agent-1" in edited.json["body"]


def test_fanout_trigger_reports_once_when_every_agent_is_done(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    one, two = ws.agent("agent-1"), ws.agent("agent-2")
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub, trigger={
            "agents": ["agent-1", "agent-2"], "run_script": "hello.sh"})
        response = github_post(client, hook["id"], "pull_request", gp.github_pull_request())
        assert response.status_code == 202, response.json
        jobs = client.get(f"/jobs?fanout_id={response.json['fanout_id']}",
                          headers=ws.headers).json["jobs"]
        by_agent = {job["agent"]: job["job_id"] for job in jobs}
        finish(ws, one, by_agent["agent-1"])
        run_background_jobs(app)
        assert stub.calls == []
        finish(ws, two, by_agent["agent-2"], "failed")
        run_background_jobs(app)

    [status] = stub.find("POST", "/statuses/")
    assert status.json["state"] == "failure"
    assert status.json["description"] == "script hello.sh: 1/2 agents succeeded"
    [comment] = stub.find("POST", "/comments")
    assert "| success | 0 | agent-1 |" in comment.json["body"]
    assert "| failed | 1 | agent-2 |" in comment.json["body"]


def test_gitlab_token_push_and_merge_request_write_back(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    sim = ws.agent()
    with gitlab_stub() as stub:
        hook = add_git(client, ws, "gitlab", stub)
        body = gp.encode(gp.gitlab_push())
        bad = client.post(f"/hooks/git/{hook['id']}", data=body,
                          headers=gp.gitlab_headers("Push Hook", "wrong"))
        push = client.post(f"/hooks/git/{hook['id']}", data=body,
                           headers=gp.gitlab_headers("Push Hook", SECRET))
        assert (bad.status_code, push.status_code) == (401, 202)
        finish(ws, sim, push.json["job_id"], "failed")
        body = gp.encode(gp.gitlab_merge_request())
        mr = client.post(f"/hooks/git/{hook['id']}", data=body,
                         headers=gp.gitlab_headers("Merge Request Hook", SECRET))
        assert mr.status_code == 202, mr.json
        finish(ws, sim, mr.json["job_id"])
        run_background_jobs(app)

    project = quote(gp.REPO, safe="")
    statuses = stub.find("POST", "/statuses/")
    assert {s.path for s in statuses} == {f"/api/v4/projects/{project}/statuses/{gp.SHA}"}
    assert sorted(s.json["state"] for s in statuses) == ["failed", "success"]
    assert all(s.headers["PRIVATE-TOKEN"] == TOKEN for s in stub.calls)
    assert statuses[0].json["name"] == "scriptmesh/gitlab-ci"
    [note] = stub.find("POST", "/notes")
    assert note.path == f"/api/v4/projects/{project}/merge_requests/5/notes"


def test_gitea_signed_push_posts_a_gitea_status(app: Flask, client: FlaskClient,
                                                ws: Workspace) -> None:
    sim = ws.agent()
    with gitea_stub() as stub:
        hook = add_git(client, ws, "gitea", stub)
        body = gp.encode(gp.github_push())
        bad = client.post(f"/hooks/git/{hook['id']}", data=body,
                          headers=gp.gitea_headers("push", body, "wrong"))
        push = client.post(f"/hooks/git/{hook['id']}", data=body,
                           headers=gp.gitea_headers("push", body, SECRET))
        assert (bad.status_code, push.status_code) == (401, 202)
        finish(ws, sim, push.json["job_id"])
        run_background_jobs(app)
        test = client.post(f"/integrations/{hook['id']}/test", headers=ws.user["headers"])

    [status] = stub.find("POST", "/statuses/")
    assert status.path == f"/api/v1/repos/{gp.REPO}/statuses/{gp.SHA}"
    assert status.headers["Authorization"] == f"token {TOKEN}"
    assert status.json["state"] == "success"
    assert test.json["status"] == "ok", test.json
    assert stub.calls[-1].path == f"/api/v1/repos/{gp.REPO}"


def test_git_config_is_validated(client: FlaskClient, ws: Workspace, make_user: Any) -> None:
    def create(path: str = "/integrations", headers: dict[str, str] | None = None,
               **change: Any) -> Any:
        body = {"type": "git", "provider": "github", "name": "ci",
                "config": {"repo": gp.REPO, "trigger": {"agent": "a", "run_script": "x"}},
                "secrets": {"token": TOKEN, "webhook_secret": SECRET}}
        body.update(change)
        return client.post(path, json=body, headers=headers or ws.user["headers"])

    assert create().status_code == 201
    assert create(provider="svn").status_code == 422
    assert create(config={"repo": gp.REPO}).status_code == 422
    assert create(config={"repo": "norepo", "trigger": {"agent": "a",
                                                        "run_script": "x"}}).status_code == 422
    assert create(secrets={"token": TOKEN}).status_code == 422
    admin = make_user(admin=True)["headers"]
    refused = create("/admin/integrations", admin)
    assert refused.status_code == 422 and "belong to a tenant" in refused.json["error"][
        "message"]


def test_a_failed_write_back_is_retried_and_a_refused_one_is_recorded(
        app: Flask, client: FlaskClient, ws: Workspace) -> None:
    app.config["WEBHOOK_RETRY_DELAYS"] = "0"
    sim = ws.agent()
    with github_stub() as stub:
        hook = add_git(client, ws, "github", stub)
        stub.fail_next = [(502, {"message": "Bad gateway"})]
        first = github_post(client, hook["id"], "push", gp.github_push())
        finish(ws, sim, first.json["job_id"])
        run_background_jobs(app)
        assert [c.path for c in stub.calls] == [f"/repos/{gp.REPO}/statuses/{gp.SHA}"] * 2
        stub.fail_next = [(422, {"message": "No commit found for SHA"})]
        second = github_post(client, hook["id"], "push", gp.github_push())
        finish(ws, sim, second.json["job_id"])
        run_background_jobs(app)

    assert len(stub.calls) == 3, "a 422 is not retried"
    states = {d.job_id: (d.state, d.report_error) for d in deliveries(app)}
    assert states[first.json["job_id"]] == ("reported", None)
    assert states[second.json["job_id"]] == (
        "report_failed", "github answered HTTP 422 to POST http://127.0.0.1:"
        f"{stub.server.server_address[1]}")
    assert TOKEN not in str(states)
