"""Completion webhooks: POST a finished job's full result, signed, with retries.

``on_job_finished`` calls ``queue_job_webhook``; the RQ task runs only after
the job's terminal state is committed. Each attempt is a ``Delivery`` row
(``GET /jobs/{id}/deliveries``); failures (non-2xx, timeouts, refused
connections) are retried with the backoff in ``WEBHOOK_RETRY_DELAYS``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orchestrator.extensions import db
from orchestrator.models import Delivery, Job
from orchestrator.services import outbound, signing
from orchestrator.services.completion import STATUS_EVENTS
from orchestrator.services.post_commit import enqueue_after_commit
from orchestrator.tasks import task

log = logging.getLogger(__name__)

EVENT_HEADER = "X-ScriptMesh-Event"
DELIVERY_HEADER = "X-ScriptMesh-Delivery"


def queue_job_webhook(job: Job) -> None:
    """Deliver ``job``'s webhook once the current transaction commits (no-op without one)."""
    if job.webhook_url:
        enqueue_after_commit(deliver_job_webhook, job.id)


def job_document(job: Job) -> dict[str, Any]:
    """The job exactly as ``GET /jobs/{id}`` shows it (the jobs API's own schema)."""
    from orchestrator.schemas.jobs import JobSchema

    return JobSchema().dump(job)


def _body(job: Job) -> bytes:
    return json.dumps(job_document(job), separators=(",", ":"), default=str).encode()


@task
def deliver_job_webhook(job_id: str, attempt: int = 1) -> bool:
    """RQ task: one delivery attempt of ``job_id``'s webhook; schedules the next on failure.

    :returns: True when the receiver answered 2xx.
    """
    job = db.session.get(Job, job_id)
    if job is None or not job.webhook_url:
        return False
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
    if not outcome.success and outcome.retryable:
        record.next_retry_at = outbound.schedule_retry(deliver_job_webhook, attempt, job.id)
    db.session.add(record)
    db.session.commit()
    log.info("webhook job=%s attempt=%d target=%s -> %s", job.id, attempt, record.target,
             "ok" if outcome.success else outcome.error)
    return outcome.success


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
