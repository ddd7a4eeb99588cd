"""AI tasks on run data: diagnosis and repair of a failed job, flakiness of a run history.

A request creates an ``AiAnalysis`` row and the work runs in the RQ worker
(``run_analysis``): it resolves the task's provider, builds a redacted
context (names of params, never values; tails of the output; the failed flow
steps), makes one call and stores ``{summary, likely_cause, suggested_fix,
provider, model, created_at}`` on the analysis and, for a job, on the job.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from flask import current_app

from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import AiAnalysis, GlobalIntegration, Integration, Job, utcnow
from orchestrator.services import outbox
from orchestrator.services.ai import routing
from orchestrator.services.ai.providers import ProviderError, chat
from orchestrator.services.ai.redact import redact, redact_values
from orchestrator.services.crypto import SecretUnreadable
from orchestrator.tasks import task

log = logging.getLogger(__name__)

ANALYSIS_QUEUED = "ai.analysis_queued"
OUTPUT_TAIL_CHARS = 4000
HISTORY_RUNS = 30
FAILED_STATUSES = ("failed", "timeout")
SYSTEM_PROMPT = (
    "You are the failure analyst of ScriptMesh, a job orchestrator that runs whitelisted "
    "scripts and declarative flows on remote agents. {goal} Answer with exactly one JSON "
    'object and nothing else: {{"summary": "...", "likely_cause": "...", '
    '"suggested_fix": "..."}}. Be specific and brief.')
GOALS = {
    "diagnosis": "Find the root cause of the failed run described below.",
    "repair": "Propose a concrete fix (a change to the script, flow, params or host) for the "
              "failed run described below.",
    "flakiness": "Decide whether the run history below shows a flaky script or schedule, "
                 "and which pattern (time of day, agent, duration, error) explains it.",
}


def request_analysis(task_name: str, *, job_id: str | None = None, script: str | None = None,
                     schedule_id: str | None = None) -> AiAnalysis:
    """Queue one AI task for the caller's tenant (the caller commits; the worker runs it)."""
    routing.check_task(task_name)
    if task_name in ("diagnosis", "repair"):
        if not job_id:
            raise ValidationFailed(f"{task_name} needs job_id.", error_code="missing_subject")
        job = db.session.get(Job, job_id)
        if job is None:
            raise NotFound(f"No job {job_id}.", error_code="job_not_found")
        tenant_id = job.tenant_id
    else:
        if not (script or schedule_id):
            raise ValidationFailed("flakiness needs script or schedule_id.",
                                   error_code="missing_subject")
        from orchestrator.models import Schedule
        from orchestrator.tenancy import current_tenant_id

        if schedule_id and db.session.get(Schedule, schedule_id) is None:
            raise NotFound(f"No schedule {schedule_id}.", error_code="schedule_not_found")
        tenant_id = current_tenant_id()
    routing.resolve(task_name, tenant_id)  # refuse now (422) rather than fail in the worker
    row = AiAnalysis(id="ai_" + secrets.token_hex(12), tenant_id=tenant_id, task=task_name,
                     job_id=job_id, script=script, schedule_id=schedule_id, status="queued")
    db.session.add(row)
    db.session.flush()
    outbox.emit(ANALYSIS_QUEUED, {"analysis_id": row.id})
    return row


def get_analysis(analysis_id: str) -> AiAnalysis:
    row = db.session.get(AiAnalysis, analysis_id)
    if row is None:
        raise NotFound(f"No AI analysis {analysis_id}.", error_code="analysis_not_found")
    return row


def analysis_queued(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``ai.analysis_queued`` subscriber (in the worker): run the analysis."""
    run_analysis(payload["analysis_id"])


@task
def run_analysis(analysis_id: str) -> str:
    """RQ task: run one queued analysis; returns its final status."""
    row = db.session.get(AiAnalysis, analysis_id)
    if row is None or row.status != "queued":
        return row.status if row else "missing"
    known = known_secrets(row.tenant_id)
    if row.job_id and (job := db.session.get(Job, row.job_id)) is not None:
        # Values are never sent as fields, and not through the output either (a script may
        # echo its API_TOKEN param).
        known.extend(str(v) for v in [*job.params.values(), *job.variables.values()]
                     if isinstance(v, str))
    try:
        resolution = routing.resolve(row.task, row.tenant_id)
        known.append(resolution.settings.api_key or "")
        context = json.dumps(redact_values(_context(row), known), indent=1, default=str)
        reply = chat(resolution.settings, SYSTEM_PROMPT.format(goal=GOALS[row.task]), context)
    except (ProviderError, ValidationFailed) as exc:
        row.status, row.error = "error", redact(str(getattr(exc, "description", exc)), known)
    else:
        row.status = "done"
        row.result = {**parse_answer(redact(reply.text, known)),
                      "provider": resolution.settings.provider, "model": reply.model,
                      "source": resolution.source, "integration_id": resolution.integration_id,
                      "task": row.task, "created_at": utcnow().isoformat().replace("+00:00", "Z")}
        if row.job_id:
            db.session.get(Job, row.job_id).diagnosis = row.result
    row.finished_at = utcnow()
    db.session.commit()
    log.info("ai %s %s -> %s", row.task, row.id, row.status)
    return row.status


def parse_answer(text: str) -> dict[str, str | None]:
    """The three fields from the model's JSON answer (tolerating prose around it)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        answer = json.loads(text[start:end + 1]) if start != -1 < end else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return {"summary": text.strip()[:2000] or None, "likely_cause": None,
                "suggested_fix": None}
    return {key: (str(answer[key])[:4000] if answer.get(key) is not None else None)
            for key in ("summary", "likely_cause", "suggested_fix")}


def _context(row: AiAnalysis) -> dict[str, Any]:
    if row.job_id:
        return {"task": row.task, **job_context(db.session.get(Job, row.job_id))}
    return {"task": row.task, **history_context(row.tenant_id, row.script, row.schedule_id)}


def job_context(job: Job) -> dict[str, Any]:
    """What a provider may see of a job: names, codes, errors, output tails; no values."""
    return {
        "kind": job.kind, "script": job.script, "agent": job.agent_name, "status": job.status,
        "param_names": sorted(job.params or {}), "variable_names": sorted(job.variables or {}),
        "exit_code": job.exit_code, "error": job.error, "duration_ms": job.duration_ms,
        "timeout_seconds": job.timeout,
        "stdout_tail": (job.stdout or "")[-OUTPUT_TAIL_CHARS:],
        "stderr_tail": (job.stderr or "")[-OUTPUT_TAIL_CHARS:],
        "failed_steps": [{"step": step.step_id, "name": step.name, "action": step.action,
                          "status": step.status, "error": step.error,
                          "reason": step.reason}
                         for step in job.steps if step.status not in ("passed", "skipped",
                                                                     "running")],
    }


def history_context(tenant_id: str, script: str | None, schedule_id: str | None
                    ) -> dict[str, Any]:
    """The last runs of a script or a schedule, newest first."""
    query = db.select(Job).where(Job.tenant_id == tenant_id)
    query = query.where(Job.schedule_id == schedule_id) if schedule_id else query.where(
        Job.script == script)
    jobs = db.session.execute(query.order_by(Job.created_at.desc()).limit(HISTORY_RUNS)
                              ).scalars().all()
    return {"script": script, "schedule_id": schedule_id, "runs": [
        {"agent": job.agent_name, "status": job.status, "exit_code": job.exit_code,
         "duration_ms": job.duration_ms, "created_at": job.created_at,
         "error": (job.error or "")[:300] or None} for job in jobs]}


def known_secrets(tenant_id: str) -> list[str]:
    """Every integration secret the tenant (and the instance) holds, plus the env keys."""
    from orchestrator.services.integrations.manage import decrypted_secrets

    values: list[str] = []
    rows = [*db.session.execute(db.select(Integration).where(
        Integration.tenant_id == tenant_id)).scalars(),
        *db.session.execute(db.select(GlobalIntegration)).scalars()]
    for row in rows:
        try:
            values.extend(decrypted_secrets(row).values())
        except SecretUnreadable:
            continue
    values.extend(str(current_app.config.get(name) or "") for name in (
        "ANTHROPIC_API_KEY", "OPENAI_API_KEY"))
    return values


@task
def handle_job_finished(job_id: str) -> None:
    """RQ task: diagnose a failed or timed-out job when its tenant turned ``auto_diagnose`` on."""
    job = db.session.get(Job, job_id)
    if job is None or job.status not in FAILED_STATUSES:
        return
    config = routing.tenant_config(job.tenant_id)
    if config is None or not config.auto_diagnose:
        return
    try:
        request_analysis("diagnosis", job_id=job.id)
    except ValidationFailed as exc:  # no provider configured: nothing to diagnose with
        log.info("auto-diagnosis of %s skipped: %s", job.id, exc.description)
        return
    db.session.commit()  # enqueues run_analysis
