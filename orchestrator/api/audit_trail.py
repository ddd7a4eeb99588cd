"""The audit trail of requests handled by other blueprints: trigger, cancel, keys, sign-ins,
integrations.

Actions of the fleet services (agent pause/drain, rollout approve/pause/rerun,
schedule changes) record their audit row in their own transaction
(``orchestrator.services.audit``). For the endpoints below, an
``after_request`` hook records each successful call instead, so those views
stay as they are: one row per 2xx answer, committed on its own right after
the action's commit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g, request

from orchestrator.extensions import db
from orchestrator.services import audit

log = logging.getLogger(__name__)

#: (endpoint, method) -> (action, view argument naming the subject, answer field naming it).
AUDITED: dict[tuple[str, str], tuple[str, str | None, str | None]] = {
    ("jobs.TriggerScript", "POST"): ("job.trigger", None, "job_id"),
    ("jobs.CancelJob", "POST"): ("job.cancel", "job_id", None),
    ("fanouts.FanoutList", "POST"): ("fanout.create", None, "fanout_id"),
    ("fanouts.CancelFanout", "POST"): ("fanout.cancel", "fanout_id", None),
    ("api_keys.ApiKeys", "POST"): ("api_key.create", None, "id"),
    ("api_keys.ApiKeyById", "DELETE"): ("api_key.revoke", "key_id", None),
    ("auth.Login", "POST"): ("auth.sign_in", None, None),
    ("agents.AgentByName", "DELETE"): ("agent.deregister", "name", None),
    ("schedules.SchedulePause", "POST"): ("schedule.pause", "schedule_id", None),
    ("schedules.ScheduleResume", "POST"): ("schedule.resume", "schedule_id", None),
    ("schedules.ScheduleRunNow", "POST"): ("schedule.run_now", "schedule_id", None),
    ("integrations.IntegrationList", "POST"): ("integration.create", None, "id"),
    ("integrations.IntegrationItem", "PATCH"): ("integration.update", "integration_id", None),
    ("integrations.IntegrationItem", "DELETE"): ("integration.delete", "integration_id", None),
    ("admin_integrations.GlobalIntegrationList", "POST"): ("global_integration.create", None,
                                                           "id"),
    ("admin_integrations.GlobalIntegrationItem", "PATCH"): ("global_integration.update",
                                                            "integration_id", None),
    ("admin_integrations.GlobalIntegrationItem", "DELETE"): ("global_integration.delete",
                                                             "integration_id", None),
}


def init_app(app: Flask) -> None:
    """Record the audited endpoints' successful requests."""
    app.after_request(record_request)


def record_request(response: Response) -> Response:
    entry = AUDITED.get((request.endpoint or "", request.method))
    if entry is None or not 200 <= response.status_code < 300:
        return response
    action, arg, field = entry
    try:
        body = _answer(response)
        subject = (request.view_args or {}).get(arg) if arg else body.get(field or "")
        tenant_id, actor = _who(action, body)
        if tenant_id is None:
            return response
        details: dict[str, Any] = {"status": response.status_code}
        if action == "job.trigger":
            payload = request.get_json(silent=True) or {}
            details.update({k: payload.get(k) for k in ("agent", "pool", "run_script",
                                                       "run_flow") if payload.get(k)})
        audit.record(action, subject, tenant_id=tenant_id, actor=actor, **details)
        db.session.commit()
    except Exception:  # noqa: BLE001 - the action succeeded; never fail its answer
        db.session.rollback()
        log.exception("audit record for %s failed", action)
    return response


def _answer(response: Response) -> dict[str, Any]:
    if response.is_streamed or not response.is_json:
        return {}
    try:
        found = json.loads(response.get_data())
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _who(action: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The tenant and actor: the principal, or for a sign-in, the token's user."""
    principal = g.get("principal")
    if principal is not None:
        return principal.tenant_id, None
    if action == "auth.sign_in" and body.get("access_token"):
        from flask_jwt_extended import decode_token  # noqa: PLC0415 - only for sign-ins

        from orchestrator.models import User  # noqa: PLC0415

        user = db.session.get(User, decode_token(body["access_token"])["sub"])
        if user is not None:
            return user.tenant_id, user.id
    return None, None
