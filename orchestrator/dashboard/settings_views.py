"""Settings: API keys (the raw key shown once) and Integrations (AI Providers / Git /
Notifications tabs, Test Connection; secrets go in and never come back out)."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, g, redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from orchestrator.dashboard import bp
from orchestrator.dashboard.pages import flash_error, page
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db
from orchestrator.models import Integration, Scope
from orchestrator.schemas.auth import ApiKeyCreateSchema
from orchestrator.schemas.integrations import IntegrationCreateSchema
from orchestrator.services import api_keys
from orchestrator.services.ai.providers import AI_PROVIDERS
from orchestrator.services.events import EVENT_TYPES
from orchestrator.services.integrations import PROVIDERS
from orchestrator.services.integrations.connection import test_integration
from orchestrator.services.integrations.kinds import GIT_PROVIDERS
from orchestrator.services.integrations.manage import (
    DEFAULT_EVENTS,
    create_integration,
    delete_integration,
    tenant_integration_views,
    update_integration,
)

#: The seed's three tabs and the integration types each lists.
INTEGRATION_TABS = {"ai": ("ai_provider",), "git": ("git",), "notifications": tuple(PROVIDERS)}
GIT_EVENTS = ("push", "pull_request")
KEY_SCOPES = tuple(s.value for s in (Scope.OPERATOR, Scope.READ, Scope.ADMIN, Scope.AGENT))


def _keys_page(created: dict[str, Any] | None = None, status: int = 200) -> tuple[str, int]:
    return page("api_keys.html", status, keys=api_keys.list_api_keys(), created=created,
                scopes=KEY_SCOPES)


@bp.route("/settings/api-keys", methods=["GET", "POST"])
def api_keys_page() -> tuple[str, int]:
    """Create answers with the page itself (never a redirect): the raw key is in this one
    response only and is stored nowhere, not even in the session."""
    if request.method == "GET":
        return _keys_page()
    body = {"name": request.form.get("name", "").strip(),
            "scope": request.form.get("scope") or "operator"}
    if request.form.get("expires_days", "").strip():
        body["expires_days"] = request.form["expires_days"].strip()
    try:
        args = ApiKeyCreateSchema().load(body)
        created = api_keys.create_api_key_for(g.principal, **args)
    except (ValidationError, ScriptMeshError) as exc:
        flash_error(exc)
        return _keys_page(status=422)
    db.session.commit()
    return _keys_page(created=created, status=201)


@bp.route("/settings/api-keys/<key_id>/revoke", methods=["POST"])
def revoke_api_key(key_id: str) -> Response:
    try:
        key = api_keys.revoke_api_key(key_id)
        db.session.commit()
        flash(f"Key {key.key_prefix}… revoked: requests made with it now get 401.", "ok")
    except ScriptMeshError as exc:
        flash_error(exc)
    return redirect(url_for("dashboard.api_keys_page"))


def ai_body(form: Any) -> dict[str, Any]:
    """An ``ai_provider`` integration in the seed's shape."""
    config = {key: form[key].strip() for key in ("model", "base_url") if form.get(key, "").strip()}
    secrets = {"api_key": form["secret"].strip()} if form.get("secret", "").strip() else {}
    return {"type": "ai_provider", "provider": form.get("provider", ""),
            "name": form.get("name", "").strip(), "config": config, "secrets": secrets}


def git_body(form: Any) -> dict[str, Any]:
    """A ``git`` integration: repository, events, branches and what a matching event runs
    (a ``POST /trigger-script`` body, as JSON)."""
    config: dict[str, Any] = {"repo": form.get("repo", "").strip(),
                              "events": form.getlist("git_events") or list(GIT_EVENTS)}
    if form.get("base_url", "").strip():
        config["base_url"] = form["base_url"].strip()
    branches = [b.strip() for b in form.get("branches", "").split(",") if b.strip()]
    if branches:
        config["branches"] = branches
    try:
        config["trigger"] = json.loads(form.get("trigger") or "{}")
    except ValueError:
        config["trigger"] = form.get("trigger")  # the schema names the field
    secrets = {name: form[name].strip() for name in ("token", "webhook_secret")
               if form.get(name, "").strip()}
    return {"type": "git", "provider": form.get("provider", ""),
            "name": form.get("name", "").strip(), "config": config, "secrets": secrets}


def integration_body(form: Any) -> dict[str, Any]:
    """The ``POST /integrations`` body: the URL and secret inputs go to the type's fields."""
    provider = PROVIDERS.get(form.get("type", ""))
    config: dict[str, Any] = {"events": form.getlist("events") or list(DEFAULT_EVENTS)}
    secrets: dict[str, str] = {}
    url, secret = form.get("url", "").strip(), form.get("secret", "").strip()
    if provider is not None:
        if url and provider.url_fields:
            field = provider.url_fields[0]
            (secrets if field in provider.secret_fields else config)[field] = url
        plain = [f for f in provider.secret_fields if f not in provider.url_fields]
        if secret and plain:
            secrets[plain[0]] = secret
    if form.get("base_url", "").strip():
        config["base_url"] = form["base_url"].strip()
    return {"type": form.get("type", ""), "name": form.get("name", "").strip(),
            "config": config, "secrets": secrets}


@bp.route("/settings/integrations", methods=["GET", "POST"])
def integrations() -> Response | tuple[str, int]:
    tab = request.args.get("tab", "notifications")
    tab = tab if tab in INTEGRATION_TABS else "notifications"
    status = 200
    if request.method == "POST":
        build = {"ai": ai_body, "git": git_body}.get(tab, integration_body)
        try:
            row = create_integration(Integration,
                                     IntegrationCreateSchema().load(build(request.form)))
            db.session.commit()
            flash(f"Integration {row.name} added. Its secret is stored encrypted and will not "
                  "be shown again.", "ok")
            return redirect(url_for("dashboard.integrations", tab=tab))
        except (ValidationError, ScriptMeshError) as exc:
            db.session.rollback()
            flash_error(exc)
            status = 422
    listed = [i for i in tenant_integration_views() if i["type"] in INTEGRATION_TABS[tab]]
    return page("integrations.html", status, tab=tab, tabs=INTEGRATION_TABS,
                integrations=listed, types=sorted(PROVIDERS), ai_providers=AI_PROVIDERS,
                git_providers=GIT_PROVIDERS, git_events=GIT_EVENTS,
                event_types=EVENT_TYPES, default_events=DEFAULT_EVENTS,
                form=request.form if request.method == "POST" else {})


@bp.route("/settings/integrations/<integration_id>/<action>", methods=["POST"])
def integration_action(integration_id: str, action: str) -> Response:
    try:
        if action == "test":
            outcome = test_integration(Integration, integration_id, g.principal.tenant_id)
            if outcome["status"] == "ok":
                flash(f"Test passed (HTTP {outcome['status_code']}).", "ok")
            else:
                flash(f"Test failed: {outcome['error']}", "error")
        elif action in ("enable", "disable"):
            update_integration(Integration, integration_id, {"enabled": action == "enable"})
            flash(f"Integration {action}d.", "ok")
        elif action == "delete":
            delete_integration(Integration, integration_id)
            flash("Integration deleted.", "ok")
        else:
            flash(f"Unknown action {action!r}.", "error")
        db.session.commit()
    except ScriptMeshError as exc:
        db.session.rollback()
        flash_error(exc)
    tab = request.args.get("tab", "notifications")
    return redirect(url_for("dashboard.integrations",
                            tab=tab if tab in INTEGRATION_TABS else "notifications"))
