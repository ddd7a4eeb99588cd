"""``POST /hooks/git/{integration_id}``: verify, refuse replays, match, trigger the run.

Nothing runs unless the provider's signature checks out under the
integration's ``webhook_secret``. Every accepted delivery id and body digest
is stored (unique per integration), so the same delivery sent twice, or its
signed body under a new delivery id, is refused with 409. A matching push or
pull request triggers ``config.trigger`` (a ``POST /trigger-script`` body: a
script, a flow or a fan-out) with ``repo``,
``branch``, ``sha`` and ``pr`` as params (scripts) or variables (flows).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import g

from orchestrator.errors import BadRequest, Conflict, NotFound, ScriptMeshError, Unauthorized
from orchestrator.extensions import db
from orchestrator.models import GitDelivery, Integration, Scope
from orchestrator.security import Principal
from orchestrator.services import agents
from orchestrator.services import params as script_params
from orchestrator.services.git.hosts import HOSTS, GitEvent, Ignored
from orchestrator.services.integrations.manage import decrypted_secrets

log = logging.getLogger(__name__)


def find_git_integration(integration_id: str) -> Integration:
    row = db.session.execute(
        db.select(Integration).where(Integration.id == integration_id,
                                     Integration.type == "git")
        .execution_options(all_tenants=True)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No git integration {integration_id}.",
                       error_code="integration_not_found")
    return row


def receive_webhook(integration_id: str, headers: Mapping[str, str],
                    body: bytes) -> tuple[dict[str, Any], int]:
    """Handle one webhook call; returns the answer and its HTTP status.

    :raises Unauthorized: unsigned or badly signed (nothing is recorded or run).
    :raises Conflict: a delivery id already seen (a replay).
    """
    row = find_git_integration(integration_id)
    host = HOSTS[row.provider]
    secret = decrypted_secrets(row).get("webhook_secret", "")
    if not row.enabled or not secret or not host.verify(headers, body, secret):
        raise Unauthorized("Missing or invalid webhook signature.", error_code="bad_signature")
    delivery_id = headers.get(host.delivery_header)
    if not delivery_id:
        raise BadRequest(f"No {host.delivery_header} header: a delivery without an id "
                         "cannot be guarded against replays.", error_code="no_delivery_id")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("The body is not JSON.", error_code="invalid_json") from None
    g.tenant_id = row.tenant_id  # act for the integration's tenant from here on
    event = host.event_name(headers)
    record = GitDelivery(tenant_id=row.tenant_id, integration_id=row.id,
                         delivery_id=delivery_id[:200], event=(event or "other")[:32],
                         body_sha256=hashlib.sha256(body).hexdigest(), state="received")
    db.session.add(record)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise Conflict(f"Delivery {delivery_id} (or its exact body) was already received.",
                       error_code="replayed_delivery") from None
    try:
        git_event = host.parse(event, payload if isinstance(payload, dict) else {})
        _check_match(row.config or {}, git_event)
    except Ignored as exc:
        record.state, record.reason = "ignored", str(exc)
        db.session.commit()
        return {"triggered": False, "delivery_id": delivery_id, "reason": str(exc)}, 200
    record.repo, record.branch = git_event.repo, git_event.branch
    record.sha, record.pr = git_event.sha, git_event.pr
    return _trigger(row, record, git_event), 202


def _check_match(config: dict[str, Any], event: GitEvent) -> None:
    if event.event not in (config.get("events") or []):
        raise Ignored(f"integration does not subscribe to {event.event}")
    if event.repo.lower() != str(config.get("repo", "")).strip("/").lower():
        raise Ignored(f"repository {event.repo!r} is not {config.get('repo')!r}")
    branch = event.target if event.event == "pull_request" else event.branch
    patterns = config.get("branches")
    if patterns and not any(fnmatch.fnmatchcase(branch or "", p) for p in patterns):
        raise Ignored(f"branch {branch!r} matches none of {', '.join(patterns)}")
    if not event.sha:
        raise Ignored("no commit sha in the payload")


def run_inputs(event: GitEvent) -> dict[str, Any]:
    return {"repo": event.repo, "branch": event.branch, "sha": event.sha, "pr": event.pr}


def script_inputs(script: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The Git inputs a script takes: those its manifest entries declare (a script never
    gets a param its author did not ask for), as text."""
    names = script_params.declared_names(agents.list_agents(), script)
    return {key: "" if value is None else value for key, value in inputs.items()
            if names is None or key in names}


def _trigger(row: Integration, record: GitDelivery, event: GitEvent) -> dict[str, Any]:
    from orchestrator.schemas.jobs import TriggerSchema
    from orchestrator.services import targets

    trigger = dict(row.config.get("trigger") or {})
    inputs = run_inputs(event)
    if trigger.get("run_flow"):
        trigger["variables"] = inputs
    else:
        trigger["params"] = {**(trigger.get("params") or {}),
                             **script_inputs(trigger["run_script"], inputs)}
    data = TriggerSchema().load({**trigger, "async_exec": True,
                                 "idempotency_key": f"git:{row.id}:{record.delivery_id}"[:200]})
    principal = Principal(tenant_id=row.tenant_id, user_id=row.id, scope=Scope.OPERATOR)
    try:
        outcome = targets.trigger(principal, data)
    except ScriptMeshError as exc:
        db.session.rollback()
        record.state, record.reason = "error", exc.description
        db.session.commit()
        raise
    answer = {"triggered": True, "delivery_id": record.delivery_id, "event": event.event,
              **inputs}
    fanout = getattr(outcome, "fanout", None)
    run = {"fanout_id": fanout.id} if fanout is not None else {"job_id": outcome.job.id}
    answer.update(run)
    # The run may already have ended (and been reported): never step back from that state.
    where = GitDelivery.id == record.id
    db.session.execute(sa.update(GitDelivery).where(where).values(**run))
    db.session.execute(sa.update(GitDelivery).where(where, GitDelivery.state == "received")
                       .values(state="triggered"))
    db.session.commit()
    log.info("git %s delivery %s -> %s", row.id, record.delivery_id, next(iter(run.values())))
    return answer
