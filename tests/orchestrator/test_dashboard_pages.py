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
