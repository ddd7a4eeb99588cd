"""Turning a recorded event into a provider-neutral ``Notification`` (title, facts, dedup key)."""

from __future__ import annotations

from typing import Any

from orchestrator.extensions import db
from orchestrator.models import Event, Job, Schedule, utcnow
from orchestrator.services.integrations.base import Notification

#: event type -> (title template, severity, action)
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "job.failed": ("Job failed: {script} on {agent}", "error", "trigger"),
    "job.timeout": ("Job timed out: {script} on {agent}", "error", "trigger"),
    "job.succeeded": ("Job succeeded: {script} on {agent}", "success", "resolve"),
    "job.cancelled": ("Job cancelled: {script} on {agent}", "info", "info"),
    "job.expired": ("Job expired before it started: {script} on {agent}", "warning", "info"),
    "agent.offline": ("Agent offline: {agent}", "critical", "trigger"),
    "agent.online": ("Agent back online: {agent}", "success", "resolve"),
    "schedule.missed": ("Schedule missed: {schedule}", "warning", "trigger"),
    "fanout.completed": ("Fan-out completed: {fanout}", "info", "info"),
    "job.recovered": ("Recovered: {script} on {agent} succeeded again", "success", "resolve"),
    "schedule.recovered": ("Schedule recovered: {schedule}", "success", "resolve"),
    "fanout.awaiting_approval": ("Fan-out awaiting approval: {fanout}", "info", "info"),
}
STDERR_TAIL = 500


def build_notification(event: Event) -> Notification:
    """The notification for a recorded event (job events are enriched from the job row)."""
    data = dict(event.payload or {})
    subject = event.subject or ""
    if subject.startswith("job_") and (job := db.session.get(Job, subject)) is not None:
        data.update(_job_data(job))
    if event.type == "schedule.missed" and data.get("schedule_id"):
        schedule = db.session.get(Schedule, data["schedule_id"])
        data.setdefault("schedule", (schedule.name if schedule else None)
                        or data["schedule_id"])
    template, severity, action = TEMPLATES.get(event.type, ("{event}", "info", "info"))
    values = {"script": "?", "agent": "?", "schedule": "?", "fanout": subject or "?",
              "event": event.type, **{k: v for k, v in data.items() if v is not None}}
    return Notification(
        event_type=event.type, title=template.format_map(_Default(values)),
        text=_text(event.type, data), severity=severity, action=action,
        dedup_key=dedup_key(event.tenant_id, event.type, data, subject),
        source=str(data.get("agent") or "scriptmesh"), timestamp=event.created_at,
        fields=_fields(data), data=data, event_id=event.id, tenant_id=event.tenant_id,
    )


class _Default(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _job_data(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "agent": job.agent_name, "script": job.script,
            "status": job.status, "exit_code": job.exit_code, "duration_ms": job.duration_ms,
            "error": job.error, "schedule_id": job.schedule_id,
            "stderr_tail": (job.stderr or "")[-STDERR_TAIL:]}


def dedup_key(tenant_id: str, event_type: str, data: dict[str, Any], subject: str) -> str:
    """One key per problem: a failing schedule (or agent+script), an agent, a schedule's misses."""
    if event_type.startswith("job."):
        what = (f"schedule/{data['schedule_id']}" if data.get("schedule_id")
                else f"script/{data.get('agent')}/{data.get('script')}")
        return f"scriptmesh/{tenant_id}/job/{what}"
    if event_type.startswith("agent."):
        return f"scriptmesh/{tenant_id}/agent/{data.get('agent') or subject}"
    if event_type == "schedule.missed":
        return f"scriptmesh/{tenant_id}/schedule/{data.get('schedule_id')}/missed"
    return f"scriptmesh/{tenant_id}/{event_type}/{subject}"


def _fields(data: dict[str, Any]) -> dict[str, str]:
    labels = (("agent", "Agent"), ("script", "Script"), ("status", "Status"),
              ("exit_code", "Exit code"), ("duration_ms", "Duration (ms)"), ("job_id", "Job"),
              ("schedule_id", "Schedule"), ("missed", "Missed fires"),
              ("last_heartbeat", "Last heartbeat"))
    return {label: str(data[key]) for key, label in labels if data.get(key) is not None}


def _text(event_type: str, data: dict[str, Any]) -> str:
    if data.get("error"):
        return f"Error: {data['error']}"
    if data.get("stderr_tail") and event_type in ("job.failed", "job.timeout"):
        return f"stderr (last lines):\n```\n{data['stderr_tail'].strip()}\n```"
    if event_type == "schedule.missed":
        return (f"{data.get('missed', 1)} fire time(s) passed while no scheduler ran; "
                f"first {data.get('first_fire_time')}, last {data.get('last_fire_time')}.")
    return ""


def test_notification(tenant_id: str | None) -> Notification:
    """The message ``POST /integrations/{id}/test`` sends."""
    return Notification(
        event_type="integration.test", title="ScriptMesh test notification",
        text="If you can read this, the integration works.", severity="info", action="info",
        dedup_key=f"scriptmesh/{tenant_id}/integration-test", source="scriptmesh",
        timestamp=utcnow(), fields={"Event": "integration.test"}, data={"test": True},
        tenant_id=tenant_id,
    )
