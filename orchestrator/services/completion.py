"""What happens when a job reaches a terminal status: the one hook for it.

``dispatch`` calls ``on_job_finished`` in the same transaction that makes a
job terminal. It records the job.* event; webhook delivery and notifications
are attached here (enqueued to RQ after commit, never run on the request path).
"""

from __future__ import annotations

from orchestrator.models import Job
from orchestrator.services.events import record_event

STATUS_EVENTS = {
    "success": "job.succeeded",
    "failed": "job.failed",
    "timeout": "job.timeout",
    "cancelled": "job.cancelled",
    "expired": "job.expired",
}


def on_job_finished(job: Job) -> None:
    """Record the job's terminal event and queue its webhook (the caller commits).

    The webhook task and the event's notifications are enqueued only when the
    caller's transaction commits (``orchestrator.services.post_commit``).
    """
    from orchestrator.services.integration_hooks import queue_job_finished
    from orchestrator.services.webhooks import queue_job_webhook

    event_type = STATUS_EVENTS.get(job.status)
    if event_type:
        record_event(job.tenant_id, event_type, subject=job.id,
                     payload={"job_id": job.id, "agent": job.agent_name, "script": job.script,
                              "status": job.status, "exit_code": job.exit_code,
                              "schedule_id": job.schedule_id})
    queue_job_webhook(job)
    queue_job_finished(job)  # git write-back and AI auto-diagnosis, in the worker
    if job.fanout_id:
        from orchestrator.services.fanout_progress import on_fanout_job_finished

        on_fanout_job_finished(job)
