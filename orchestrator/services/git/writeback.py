"""Write-back when a Git-triggered run ends: a commit status, and one PR comment kept current.

``handle_job_finished`` runs in the worker for every finished job. A job (or
the fan-out it belongs to, once all its jobs ended) whose idempotency key
is ``git:<integration>:<delivery>`` was started by a webhook: its result is
posted as a commit status and, for a pull request, as the PR's one
ScriptMesh comment (created once, then edited on every re-run).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
import sqlalchemy as sa
from flask import current_app

from orchestrator.extensions import db
from orchestrator.models import (
    TERMINAL_STATUSES,
    Fanout,
    GitComment,
    GitDelivery,
    Integration,
    Job,
    utcnow,
)
from orchestrator.services import outbound, outbox
from orchestrator.services.git.hosts import HOSTS, ApiCall, GitHost
from orchestrator.services.integrations.manage import decrypted_secrets
from orchestrator.tasks import task

log = logging.getLogger(__name__)

KEY_PREFIX = "git:"
WRITEBACK_RETRY = "git.writeback_retry"
COMMENT_MARKER = "<!-- scriptmesh-result -->"
RESULT_STATES = {"success": "success", "failed": "failure", "timeout": "failure"}


class WriteBackFailed(RuntimeError):
    """The Git host did not accept a status or comment (the reason has no token or URL)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@task
def handle_job_finished(job_id: str) -> None:
    """RQ task: report a Git-triggered run's result to its host (once per delivery)."""
    job = db.session.get(Job, job_id)
    if job is None:
        return
    jobs, key = [job], job.idempotency_key
    if job.fanout_id:
        fanout = db.session.get(Fanout, job.fanout_id)
        key = fanout.idempotency_key if fanout else None
        if not key or not key.startswith(KEY_PREFIX):
            return
        jobs = list(db.session.execute(db.select(Job).where(Job.fanout_id == job.fanout_id)
                                       .order_by(Job.fanout_seq)).scalars())
        if any(j.status not in TERMINAL_STATUSES for j in jobs):
            return
    delivery = _claim(key)
    if delivery is not None:
        write_back(delivery, jobs, attempt=1)


def retry_due(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``git.writeback_retry`` subscriber: try a failed write-back again."""
    retry_write_back(payload["delivery_pk"], payload["attempt"])


def retry_write_back(delivery_pk: int, attempt: int = 2) -> None:
    """Try a failed write-back again (``WEBHOOK_RETRY_DELAYS`` apart)."""
    delivery = db.session.get(GitDelivery, delivery_pk)
    if delivery is None or delivery.state != "retrying":
        return
    query = (db.select(Job).where(Job.fanout_id == delivery.fanout_id).order_by(Job.fanout_seq)
             if delivery.fanout_id else db.select(Job).where(Job.id == delivery.job_id))
    jobs = list(db.session.execute(query).scalars())
    if jobs:
        write_back(delivery, jobs, attempt)


def write_back(delivery: GitDelivery, jobs: list[Job], attempt: int) -> None:
    """Report and record the outcome; a retryable failure is tried again later."""
    integration = db.session.get(Integration, delivery.integration_id)
    if integration is None:
        return
    try:
        report(integration, delivery, jobs)
    except WriteBackFailed as exc:
        retry = exc.retryable and schedule_retry(delivery.id, attempt)
        delivery.state = "retrying" if retry else "report_failed"
        delivery.report_error = str(exc)
        log.warning("git write-back for %s failed (attempt %d): %s", delivery.delivery_id,
                    attempt, exc)
    else:
        delivery.state, delivery.report_error = "reported", None
    delivery.reported_at = utcnow()
    db.session.commit()


def schedule_retry(delivery_pk: int, attempt: int) -> bool:
    """Have the outbox run the next attempt after the backoff; False when out of tries."""
    delays = outbound.retry_delays()
    if attempt > len(delays):
        return False
    outbox.emit(WRITEBACK_RETRY, {"delivery_pk": delivery_pk, "attempt": attempt + 1},
                delay=max(0, delays[attempt - 1]))
    return True


def _claim(key: str | None) -> GitDelivery | None:
    """The delivery behind ``key``, claimed for reporting (None if not ours or done)."""
    if not key or not key.startswith(KEY_PREFIX):
        return None
    integration_id, _, delivery_id = key.removeprefix(KEY_PREFIX).partition(":")
    claimed = db.session.execute(
        sa.update(GitDelivery)
        .where(GitDelivery.integration_id == integration_id,
               GitDelivery.delivery_id == delivery_id,
               GitDelivery.state.in_(("received", "triggered")))
        .values(state="reporting"))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    return db.session.execute(db.select(GitDelivery).where(
        GitDelivery.integration_id == integration_id,
        GitDelivery.delivery_id == delivery_id)).scalar_one()


def overall_state(jobs: list[Job]) -> str:
    states = {RESULT_STATES.get(job.status, "error") for job in jobs}
    for state in ("error", "failure"):
        if state in states:
            return state
    return "success"


def report(integration: Integration, delivery: GitDelivery, jobs: list[Job]) -> None:
    """Post the commit status, then (for a PR) create or edit the result comment."""
    host = HOSTS[integration.provider]
    config = integration.config or {}
    token = decrypted_secrets(integration).get("token", "")
    base = host.api_base(config.get("base_url"))
    state = overall_state(jobs)
    context = str(config.get("context") or f"scriptmesh/{integration.name}")
    call(host, token, host.status_call(base, delivery.repo, delivery.sha, state,
                                       describe(jobs, state), context, None))
    if delivery.pr:
        upsert_comment(host, token, base, integration, delivery, comment_body(jobs, state,
                                                                              delivery))


def call(host: GitHost, token: str, api: ApiCall) -> Any:
    """One API call; the JSON answer. Reasons never include the URL or the token."""
    try:
        outbound.check_target(api.url)
        response = requests.request(
            api.method, api.url, json=api.json, allow_redirects=False,
            headers={"User-Agent": outbound.USER_AGENT, **host.headers(token)},
            timeout=float(current_app.config.get("GIT_TIMEOUT", 15)))
    except outbound.BlockedTarget as exc:
        raise WriteBackFailed(f"{host.name}: blocked: {exc}", retryable=False) from None
    except requests.RequestException as exc:
        raise WriteBackFailed(f"{host.name}: {type(exc).__name__}") from None
    if response.status_code >= 300:
        code = response.status_code
        raise WriteBackFailed(f"{host.name} answered HTTP {code} to {api.method} "
                              f"{outbound.describe_target(api.url)}",
                              retryable=code == 429 or code >= 500)
    try:
        return response.json()
    except ValueError:
        return None


def upsert_comment(host: GitHost, token: str, base: str, integration: Integration,
                   delivery: GitDelivery, body: str) -> None:
    existing = db.session.execute(db.select(GitComment).where(
        GitComment.integration_id == integration.id, GitComment.pr == delivery.pr)
    ).scalar_one_or_none()
    if existing is not None:
        try:
            call(host, token, host.comment_update(base, delivery.repo, delivery.pr,
                                                  existing.comment_id, body))
            existing.updated_at = utcnow()
            return
        except WriteBackFailed:  # deleted by someone: post a new one below
            log.info("PR %s comment %s gone; posting anew", delivery.pr, existing.comment_id)
    answer = call(host, token, host.comment_create(base, delivery.repo, delivery.pr, body))
    comment_id = str((answer or {}).get("id") or "")
    if existing is not None:
        existing.comment_id = comment_id
    else:
        db.session.add(GitComment(tenant_id=integration.tenant_id,
                                  integration_id=integration.id, pr=delivery.pr,
                                  comment_id=comment_id))


def _seconds(job: Job) -> str:
    return f"{job.duration_ms / 1000:.1f}s" if job.duration_ms is not None else "-"


def describe(jobs: list[Job], state: str) -> str:
    """The one-line status description."""
    first = jobs[0]
    what = f"{first.kind} {first.script}"
    if first.fanout_id:
        ok = sum(job.status == "success" for job in jobs)
        return f"{what}: {ok}/{len(jobs)} agents succeeded"
    return f"{what} {first.status} on {first.agent_name} in {_seconds(first)}"


def comment_body(jobs: list[Job], state: str, delivery: GitDelivery) -> str:
    """Markdown: headline, then the fan-out's grouped result or the flow's step table."""
    from orchestrator.services.fanout_report import result_diff

    icon = {"success": "✅", "failure": "❌"}.get(state, "⚠️")
    lines = [COMMENT_MARKER, f"### {icon} ScriptMesh: {describe(jobs, state)}", "",
             f"Commit `{delivery.sha[:12]}` on `{delivery.branch}` · job "
             f"`{jobs[0].fanout_id or jobs[0].id}`", ""]
    if jobs[0].fanout_id:
        lines += ["| status | exit code | agents |", "|---|---|---|"]
        lines += [f"| {group['status']} | {group['exit_code']} | "
                  f"{', '.join(a or '?' for a in group['agents'])} |"
                  for group in result_diff(jobs)]
    elif jobs[0].kind == "flow" and jobs[0].steps:
        lines += ["| step | action | status | duration |", "|---|---|---|---|"]
        lines += [f"| {step.step_id} | {step.action} | {step.status} | "
                  f"{'-' if step.duration_ms is None else step.duration_ms} ms |"
                  for step in jobs[0].steps]
    else:
        job = jobs[0]
        lines += [f"Status **{job.status}**, exit code {job.exit_code}, {_seconds(job)}."]
    return "\n".join(lines)
