"""Events -> notifications: which integrations receive an event, and delivering to them.

Every ``Event`` recorded anywhere (job.*, agent.*, schedule.missed,
fanout.completed) emits ``event.recorded`` on the outbox; its ``notifications``
subscriber (``fan_out_event``) runs in the worker once the event has committed.
Resolution per integration type, as in the product docs: the tenant's own
integrations of that type subscribed to the event; if it has none, the
instance's global ones; if none, an environment fallback such as
``SCRIPTMESH_SLACK_WEBHOOK_URL``. Each target is then delivered by its own
outbox row (``notification.due`` -> ``deliver_notification``), retried with
the webhook backoff; every attempt is a ``Delivery``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app

from orchestrator.extensions import db, redis_store
from orchestrator.models import Delivery, Event, GlobalIntegration, Integration, utcnow
from orchestrator.services import alert_rules, outbound, outbox
from orchestrator.services.integrations import PROVIDERS
from orchestrator.services.integrations.base import Notification, Target
from orchestrator.services.integrations.manage import (
    get_integration,
    integration_view,
    target_for,
)
from orchestrator.services.integrations.messages import build_notification, test_notification

log = logging.getLogger(__name__)

#: type -> (config key of the environment fallback, the provider field it fills).
ENV_FALLBACKS = {
    "slack": ("SLACK_WEBHOOK_URL", "webhook_url"),
    "discord": ("DISCORD_WEBHOOK_URL", "webhook_url"),
    "teams": ("TEAMS_WEBHOOK_URL", "webhook_url"),
    "pagerduty": ("PAGERDUTY_ROUTING_KEY", "routing_key"),
}
ENV_PREFIX = "env:"
NOTIFICATION_DUE = "notification.due"
#: Session key: tenants known to have a notification target in this transaction.
_MAY_NOTIFY_KEY = "scriptmesh.may_notify"
#: Redis key marking a PagerDuty incident we triggered (so a resolve is only sent for it).
OPEN_INCIDENT_KEY = "scriptmesh:pd-open:{target}:{dedup}"
OPEN_INCIDENT_TTL = 30 * 24 * 3600


def may_notify(payload: dict[str, Any]) -> bool:
    """Filter of the ``notifications`` subscriber: could anything receive this tenant's
    events? Asked once per tenant and transaction, so a tenant without any pays nothing."""
    session = db.session()
    known = session.info.setdefault(_MAY_NOTIFY_KEY, {})
    tenant_id = payload["tenant_id"]
    if tenant_id not in known:
        known[tenant_id] = _may_notify(session, {tenant_id})
    return known[tenant_id]


def _may_notify(session: sa.orm.Session, tenant_ids: set[str]) -> bool:
    """Whether any integration (or environment fallback) could receive these tenants' events.

    Runs inside the emitting transaction, on its connection.
    """
    if any(current_app.config.get(key) for key, _field in ENV_FALLBACKS.values()):
        return True
    connection = session.connection()
    for query in (
        sa.select(Integration.id).where(Integration.tenant_id.in_(tenant_ids),
                                        Integration.enabled.is_(True)),
        sa.select(GlobalIntegration.id).where(GlobalIntegration.enabled.is_(True)),
    ):
        if connection.execute(query.limit(1)).first() is not None:
            return True
    return False


def env_target(type_: str, event_type: str) -> Target | None:
    """The environment fallback for ``type_``, if configured and subscribed."""
    if type_ not in ENV_FALLBACKS:
        return None
    key, field = ENV_FALLBACKS[type_]
    value = current_app.config.get(key)
    events = [e.strip() for e in str(current_app.config.get("NOTIFY_FALLBACK_EVENTS", ""))
              .split(",") if e.strip()]
    if not value or not PROVIDERS[type_].subscribes(event_type, events):
        return None
    return Target(id=ENV_PREFIX + type_, type=type_, name=f"{key} (environment)",
                  config={"events": events}, secrets={field: value})


def resolve_targets(tenant_id: str, event_type: str) -> list[str]:
    """Ids of the integrations (or ``env:<type>``) that receive ``event_type`` for a tenant."""
    own = db.session.execute(db.select(Integration).where(
        Integration.tenant_id == tenant_id, Integration.enabled.is_(True))).scalars().all()
    shared = db.session.execute(db.select(GlobalIntegration).where(
        GlobalIntegration.enabled.is_(True))).scalars().all()
    chosen: list[str] = []
    for type_, provider in PROVIDERS.items():
        for candidates in (own, shared):
            matching = [row.id for row in candidates
                        if row.type == type_ and provider.subscribes(event_type, row.events)]
            if matching:
                chosen += matching
                break
        else:
            if env_target(type_, event_type):
                chosen.append(ENV_PREFIX + type_)
    return chosen


def fan_out_event(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``event.recorded`` subscriber: one ``notification.due`` per receiving integration."""
    event = db.session.get(Event, payload["event_id"])
    if event is None:
        return
    targets = alert_rules.filter_targets(event, resolve_targets(event.tenant_id, event.type))
    for target_id in targets:
        outbox.emit(NOTIFICATION_DUE, {"event_id": event.id, "target_id": target_id})


def load_target(target_id: str, event_type: str) -> Target | None:
    if target_id.startswith(ENV_PREFIX):
        return env_target(target_id[len(ENV_PREFIX):], event_type)
    row = db.session.get(Integration, target_id) or db.session.get(GlobalIntegration, target_id)
    return target_for(row) if row is not None and row.enabled else None


def deliver_notification(payload: dict[str, Any], attempt: int = 1) -> None:
    """``notification.due`` subscriber: one attempt to send an event to one integration.

    :raises RetryLater: when it failed and a retry is left.
    """
    event = db.session.get(Event, payload["event_id"])
    target = load_target(payload["target_id"], event.type) if event is not None else None
    if event is None or target is None:
        return
    notification = build_notification(event)
    if notification.action == "resolve" and not _incident_open(target, notification):
        return  # nothing of ours to resolve
    outcome, url = send_notification(target, notification)
    record = Delivery(
        tenant_id=event.tenant_id, kind="integration", event_id=event.id, event_type=event.type,
        job_id=event.subject if (event.subject or "").startswith("job_") else None,
        integration_id=target.id, integration_type=target.type,
        target=outbound.describe_target(url), attempt=attempt, status_code=outcome.status_code,
        success=outcome.success, error=outcome.error, duration_ms=outcome.duration_ms,
    )
    if outcome.success:
        _track_incident(target, notification)
    db.session.add(record)
    log.info("notification event=%s integration=%s attempt=%d -> %s", event.id, target.id,
             attempt, "ok" if outcome.success else outcome.error)
    outbound.retry_if_worth_it(record, outcome, attempt)


def send_notification(target: Target, notification: Notification) -> tuple[outbound.Outcome, str]:
    """Build the provider's request and send it once."""
    request = PROVIDERS[target.type].build(notification, target)
    return outbound.send(request.method, request.url, request.body, request.headers), request.url


def _incident_key(target: Target, notification: Notification) -> str:
    return OPEN_INCIDENT_KEY.format(target=target.id, dedup=notification.dedup_key)


def _incident_open(target: Target, notification: Notification) -> bool:
    if target.type != "pagerduty":
        return True
    try:
        return bool(redis_store.connection.exists(_incident_key(target, notification)))
    except redis.RedisError:
        return True  # a needless resolve is harmless


def _track_incident(target: Target, notification: Notification) -> None:
    if target.type != "pagerduty":
        return
    key = _incident_key(target, notification)
    try:
        if notification.action == "trigger":
            redis_store.connection.set(key, b"1", ex=OPEN_INCIDENT_TTL)
        elif notification.action == "resolve":
            redis_store.connection.delete(key)
    except redis.RedisError as exc:
        log.warning("pagerduty incident state not saved: %s", type(exc).__name__)


def test_integration(model: type[Integration] | type[GlobalIntegration], integration_id: str,
                     tenant_id: str | None) -> dict[str, Any]:
    """Send a real test message now; record ``last_test_*`` and the status (active/error).

    A PagerDuty test triggers and at once resolves its test incident.
    """
    row = get_integration(model, integration_id)
    target = target_for(row)
    notification = test_notification(tenant_id)
    outcome, _url = send_notification(target, notification)
    if outcome.success and target.type == "pagerduty":
        send_notification(target, replace(notification, action="resolve"))
    row.last_test_at = utcnow()
    row.last_test_status = "ok" if outcome.success else "error"
    row.last_test_error = outcome.error
    row.status = "active" if outcome.success else "error"
    db.session.commit()
    log.info("integration %s test -> %s", row.id, row.last_test_status)
    return {"status": row.last_test_status, "status_code": outcome.status_code,
            "error": outcome.error, "duration_ms": outcome.duration_ms,
            "integration": integration_view(row)}
