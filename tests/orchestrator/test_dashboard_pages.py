"""Dashboard pages through the Flask test client: sessions, CSRF, tenant scoping, headers."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from orchestrator.dashboard.guard import CONTENT_SECURITY_POLICY

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    found = CSRF_RE.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def sign_in(client: FlaskClient, user: dict[str, Any]) -> None:
    token = csrf(client, "/ui/sign-in")
    answer = client.post("/ui/sign-in", data={"email": user["email"],
                                              "password": user["password"],
                                              "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def test_root_redirects_and_pages_need_a_session(client: FlaskClient) -> None:
    assert client.get("/").headers["Location"].endswith("/ui/agents")
    answer = client.get("/ui/jobs")
    assert answer.status_code == 302
    assert "/ui/sign-in?next=" in answer.headers["Location"]


def test_sign_in_sets_a_strict_cookie_and_every_page_renders(client: FlaskClient,
                                                             make_user: Any) -> None:
    user = make_user()
    sign_in(client, user)
    cookie = client.get_cookie("scriptmesh_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    for path in ("/ui/agents", "/ui/run", "/ui/jobs", "/ui/fanouts", "/ui/schedules",
                 "/ui/metrics", "/ui/settings/api-keys", "/ui/settings/integrations",
                 "/ui/settings/integrations?tab=ai"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True)[:2000])
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "<script>" not in answer.get_data(as_text=True)


def test_wrong_password_and_missing_csrf_are_refused(client: FlaskClient,
                                                     make_user: Any) -> None:
    user = make_user()
    token = csrf(client, "/ui/sign-in")
    wrong = client.post("/ui/sign-in", data={"email": user["email"], "password": "nope" * 4,
                                             "csrf_token": token})
    assert wrong.status_code == 401 and "Invalid email or password" in wrong.get_data(as_text=True)
    forged = client.post("/ui/sign-in", data={"email": user["email"],
                                              "password": user["password"]})
    assert forged.status_code == 403 and "csrf_failed" in forged.get_data(as_text=True)


def test_sign_out_revokes_the_session_family(client: FlaskClient, make_user: Any) -> None:
    user = make_user()
    sign_in(client, user)
    stolen = client.get_cookie("scriptmesh_session").value
    token = csrf(client, "/ui/agents")
    assert client.post("/ui/sign-out", data={"csrf_token": token}).status_code == 302
    client.set_cookie("scriptmesh_session", stolen)  # a copy of the old cookie is dead too
    assert client.get("/ui/agents").status_code == 302


def test_api_key_shown_once_and_other_tenant_sees_nothing(app: Any, make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    first, second = app.test_client(), app.test_client()
    sign_in(first, alice)
    sign_in(second, bob)
    token = csrf(first, "/ui/settings/api-keys")
    created = first.post("/ui/settings/api-keys", data={"name": "ci-key", "scope": "read",
                                                        "csrf_token": token})
    body = created.get_data(as_text=True)
    assert created.status_code == 201
    raw = re.search(r'value="(sm_live_[^"]+)"', body).group(1)
    assert "It will not be shown again" in body
    listing = first.get("/ui/settings/api-keys").get_data(as_text=True)
    assert "ci-key" in listing and raw not in listing
    assert "ci-key" not in second.get("/ui/settings/api-keys").get_data(as_text=True)


def test_cron_preview_words_and_next_fires(client: FlaskClient, make_user: Any) -> None:
    sign_in(client, make_user())
    preview = client.get("/ui/schedules/preview.json?cron=0+2+*+*+*&tz=UTC").get_json()
    assert preview["ok"] and len(preview["next"]) == 5
    assert all(t.endswith("T02:00:00Z") for t in preview["next"])
    assert "02:00" in preview["description"]
    bad = client.get("/ui/schedules/preview.json?cron=61+*+*+*+*").get_json()
    assert not bad["ok"] and "minute" in bad["error"]


def test_fanout_report_groups_results_largest_first(app: Any, make_user: Any) -> None:
    """The report (API and pages share it) groups identical results, largest group first."""
    from orchestrator.extensions import db
    from orchestrator.models import Fanout, Job
    from orchestrator.services.fanout_report import fanout_report

    user = make_user()
    with app.app_context():
        db.session.add(Fanout(id="fan_dash", tenant_id=user["tenant_id"], script="deploy.sh",
                              total=5, stages=[{"agents": []}], status="running"))
        for i, (status, code, out) in enumerate([("success", 0, "ok\n"), ("success", 0, "ok\n"),
                                                  ("failed", 4, "boom\n"), ("running", None, ""),
                                                  ("pending", None, "")]):
            db.session.add(Job(id=f"job_dash{i}", tenant_id=user["tenant_id"],
                               agent_name=f"a{i}", script="deploy.sh", fanout_id="fan_dash",
                               fanout_seq=i, fanout_stage=0, status=status, exit_code=code,
                               stdout=out, held=i == 4))
        db.session.commit()
        report = fanout_report("fan_dash")
        assert [g["count"] for g in report["diff"]] == [2, 1, 1, 1]
        assert [a["state"] for a in report["agents"]][-1] == "waiting"
        assert report["held"] == 1 and report["errors"] == 1


def test_agents_page_filters_counts_and_pages_in_sql(app: Any, client: FlaskClient,
                                                     make_user: Any) -> None:
    from datetime import timedelta

    from orchestrator.extensions import db
    from orchestrator.models import Agent, utcnow

    user, other = make_user(), make_user()
    now = utcnow()
    with app.app_context():
        for i in range(120):
            db.session.add(Agent(
                tenant_id=user["tenant_id"], name=f"node-{i:03d}",
                tags=["web"] if i % 2 else ["db", "eu"], draining=i % 30 == 0,
                online_until=now + timedelta(minutes=1) if i % 3 else now - timedelta(1)))
        db.session.add(Agent(tenant_id=other["tenant_id"], name="foreign-node", tags=["web"],
                             online_until=now + timedelta(minutes=1)))
        db.session.commit()
    sign_in(client, user)
    page = client.get("/ui/agents").get_data(as_text=True)
    assert "Agents <span class=\"muted\">120</span>" in page and "foreign-node" not in page
    assert page.count('<tr data-agent=') == 50 and "Page 1 of 3" in page
    assert '<span data-count="offline">40</span>' in page
    assert '<span data-count="draining">' in page
    db_online = client.get("/ui/agents?tag=db&status=online").get_data(as_text=True)
    names = re.findall(r'<tr data-agent="([^"]+)"', db_online)
    assert names and all(int(n[-3:]) % 2 == 0 and int(n[-3:]) % 3 and int(n[-3:]) % 30
                         for n in names)
    assert client.get("/ui/agents?name=node-11").get_data(as_text=True).count(
        "<tr data-agent=") == 10  # node-110 .. node-119
    last = client.get("/ui/agents?page=99").get_data(as_text=True)
    assert "Page 3 of 3" in last and last.count("<tr data-agent=") == 20


def test_sign_up_verify_then_sign_in(client: FlaskClient, mailed_code: Any) -> None:
    email = "new.user@signup.example"
    token = csrf(client, "/ui/sign-up")
    short = client.post("/ui/sign-up", data={"email": email, "password": "short",
                                             "csrf_token": token})
    assert short.status_code == 422 and "12" in short.get_data(as_text=True)
    made = client.post("/ui/sign-up", data={"email": email, "password": "a long passphrase 1",
                                            "tenant_name": "Signup Inc", "csrf_token": token})
    assert made.status_code == 302 and "/ui/verify" in made.headers["Location"]
    early = client.post("/ui/sign-in", data={"email": email, "password": "a long passphrase 1",
                                             "csrf_token": token})
    assert early.status_code == 403 and "not verified" in early.get_data(as_text=True)
    wrong = client.post("/ui/verify", data={"email": email, "code": "000000",
                                            "csrf_token": token})
    assert wrong.status_code == 400
    done = client.post("/ui/verify", data={"email": email, "code": mailed_code(email),
                                           "csrf_token": token})
    assert done.status_code == 302
    signed = client.post("/ui/sign-in?next=/ui/jobs", data={
        "email": email, "password": "a long passphrase 1", "csrf_token": token})
    assert signed.status_code == 302 and signed.headers["Location"] == "/ui/jobs"
    evil = client.post("/ui/sign-in?next=https://evil.example/", data={
        "email": email, "password": "a long passphrase 1", "csrf_token": csrf(client, "/ui/jobs")})
    assert evil.headers["Location"] == "/ui/agents"


def test_password_reset_by_mailed_code(client: FlaskClient, make_user: Any,
                                       mailed_code: Any) -> None:
    user = make_user()
    token = csrf(client, "/ui/reset-password")
    sent = client.post("/ui/reset-password", data={"email": user["email"], "action": "send",
                                                   "csrf_token": token})
    assert sent.status_code == 302 and "sent=1" in sent.headers["Location"]
    wrong = client.post("/ui/reset-password", data={
        "email": user["email"], "action": "confirm", "code": "000000",
        "password": "a brand new passphrase", "csrf_token": token})
    assert wrong.status_code == 400
    done = client.post("/ui/reset-password", data={
        "email": user["email"], "action": "confirm", "code": mailed_code(user["email"]),
        "password": "a brand new passphrase", "csrf_token": token})
    assert done.status_code == 302 and "/ui/sign-in" in done.headers["Location"]
    old = client.post("/ui/sign-in", data={"email": user["email"], "password": user["password"],
                                           "csrf_token": token})
    assert old.status_code == 401
    new = client.post("/ui/sign-in", data={"email": user["email"],
                                           "password": "a brand new passphrase",
                                           "csrf_token": token})
    assert new.status_code == 302


def test_run_form_from_declared_params(app: Any, client: FlaskClient, make_user: Any) -> None:
    """The Run form offers the manifest's declared params, typed, and the job gets them."""
    from orchestrator.extensions import db
    from orchestrator.models import Agent, Job

    user = make_user()
    params = [{"name": "target", "required": True, "type": "string",
               "description": "Where to write the archive"},
              {"name": "compress", "type": "boolean", "default": False},
              {"name": "level", "type": "integer", "enum": [1, 5, 9], "default": 5}]
    with app.app_context():
        db.session.add(Agent(tenant_id=user["tenant_id"], name="box", tags=["x"], manifest={
            "scripts": [{"name": "backup.sh", "description": "Archive", "params": params}]}))
        db.session.commit()
    sign_in(client, user)
    form = client.get("/ui/run?target=agent&value=box&kind=script&name=backup.sh")
    html = form.get_data(as_text=True)
    assert 'name="param.target"' in html and "Where to write the archive" in html
    assert 'type="checkbox" name="param.compress"' in html
    assert "<option selected>5</option>" in html
    token = CSRF_RE.search(html).group(1)
    ran = client.post("/ui/run", data={"target": "agent", "value": "box", "kind": "script",
                                       "name": "backup.sh", "param.target": "/tmp/b",
                                       "param.compress": "true", "param.level": "9",
                                       "csrf_token": token})
    assert ran.status_code == 302, ran.get_data(as_text=True)[:3000]
    job_id = ran.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.script == "backup.sh" and job.agent_name == "box"
        assert job.params["target"] == "/tmp/b"
        assert str(job.params["level"]) == "9" and str(job.params["compress"]).lower() == "true"
    page = client.get(f"/ui/jobs/{job_id}").get_data(as_text=True)
    assert "target=/tmp/b" in page and "Cancel job" in page
    again = client.post(f"/ui/jobs/{job_id}/rerun", data={"csrf_token": token})
    assert again.status_code == 302
    rerun_id = again.headers["Location"].rsplit("/", 1)[1]
    assert rerun_id.startswith("job_") and rerun_id != job_id
    with app.app_context():
        assert db.session.get(Job, rerun_id).params == db.session.get(Job, job_id).params


def test_ai_and_git_tabs_add_integrations_whose_secrets_never_show(
        client: FlaskClient, make_user: Any) -> None:
    user = make_user()
    sign_in(client, user)
    token = csrf(client, "/ui/settings/integrations?tab=ai")
    made = client.post("/ui/settings/integrations?tab=ai", data={
        "csrf_token": token, "provider": "anthropic", "name": "Team Claude",
        "model": "claude-sonnet-4-5", "secret": "sk-ant-very-secret"})
    assert made.status_code == 302 and "tab=ai" in made.headers["Location"]
    page = client.get("/ui/settings/integrations?tab=ai").get_data(as_text=True)
    assert "Team Claude" in page and "anthropic" in page and "sk-ant-very-secret" not in page
    git = client.post("/ui/settings/integrations?tab=git", data={
        "csrf_token": token, "provider": "github", "name": "api repo", "repo": "acme/api",
        "git_events": ["push"], "trigger": '{"agent": "ci", "run_script": "hello.sh"}',
        "token": "ghp_secret_token", "webhook_secret": "hook-secret"})
    assert git.status_code == 302, git.get_data(as_text=True)[:300]
    git_page = client.get("/ui/settings/integrations?tab=git").get_data(as_text=True)
    assert "api repo" in git_page and "ghp_secret_token" not in git_page
    assert "Team Claude" not in git_page, "each tab lists its own kind"
    bad = client.post("/ui/settings/integrations?tab=git", data={
        "csrf_token": token, "provider": "github", "name": "x", "repo": "acme/api",
        "trigger": "{not json"})
    assert bad.status_code == 422
