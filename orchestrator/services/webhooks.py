"""Completion webhooks: POST a finished job's full result, signed, with retries.

``deliver_job_webhook`` is the ``webhook`` subscriber of ``job.finished``: an
outbox row written with the job's terminal state, delivered by the worker
once that state has committed. Each attempt is a ``Delivery`` row
(``GET /jobs/{id}/deliveries``); failures (non-2xx, timeouts, refused
connections) are retried by the outbox after the ``WEBHOOK_RETRY_DELAYS``
backoff, so a retry survives a Redis restart or flush.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orchestrator.extensions import db
from orchestrator.models import Delivery, Job
from orchestrator.services import outbound, signing
from orchestrator.services.lifecycle import STATUS_EVENTS

log = logging.getLogger(__name__)

EVENT_HEADER = "X-ScriptMesh-Event"
DELIVERY_HEADER = "X-ScriptMesh-Delivery"


def has_webhook(payload: dict[str, Any]) -> bool:
    """Whether a finished job asked for a webhook (the subscriber's filter)."""
    return bool(payload.get("has_webhook"))


def job_document(job: Job) -> dict[str, Any]:
    """The job exactly as ``GET /jobs/{id}`` shows it (the jobs API's own schema)."""
    from orchestrator.schemas.jobs import JobSchema

    return JobSchema().dump(job)


def _body(job: Job) -> bytes:
    return json.dumps(job_document(job), separators=(",", ":"), default=str).encode()


def deliver_job_webhook(payload: dict[str, Any], attempt: int = 1) -> None:
    """One delivery attempt of a finished job's webhook (the outbox calls it).

    :raises RetryLater: when the receiver failed and a retry is left.
    """
    job = db.session.get(Job, payload["job_id"])
    if job is None or not job.webhook_url:
        return
    body = _body(job)
    headers = signing.signed_headers(signing.signing_secret(job.tenant_id), body)
    headers[EVENT_HEADER] = STATUS_EVENTS.get(job.status, "job.finished")
    headers[DELIVERY_HEADER] = f"{job.id}.{attempt}"
    outcome = outbound.send("POST", job.webhook_url, body, headers)
    record = Delivery(
        tenant_id=job.tenant_id, kind="webhook", job_id=job.id,
        event_type=headers[EVENT_HEADER], target=outbound.describe_target(job.webhook_url),
        attempt=attempt, status_code=outcome.status_code, success=outcome.success,
        error=outcome.error, duration_ms=outcome.duration_ms,
    )
    db.session.add(record)
    log.info("webhook job=%s attempt=%d target=%s -> %s", job.id, attempt, record.target,
             "ok" if outcome.success else outcome.error)
    outbound.retry_if_worth_it(record, outcome, attempt)


def list_deliveries(job_id: str) -> list[Delivery]:
    """Every delivery attempt about a job (webhook and notifications), oldest first.

    :raises NotFound: when the job is not the caller's.
    """
    from orchestrator.errors import NotFound

    if db.session.get(Job, job_id) is None:
        raise NotFound(f"No job {job_id}.", error_code="job_not_found")
    return list(db.session.execute(
        db.select(Delivery).where(Delivery.job_id == job_id)
        .order_by(Delivery.created_at, Delivery.id)
    ).scalars())
