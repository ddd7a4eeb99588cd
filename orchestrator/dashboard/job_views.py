"""Jobs: the filtered list, one job live (output, flow steps, status), cancel and run again."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, jsonify, redirect, request, stream_with_context, url_for
from marshmallow import ValidationError

from orchestrator.dashboard import bp
from orchestrator.dashboard.pages import flash_error, page, query_args
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db
from orchestrator.models import JobStatus
from orchestrator.schemas.jobs import JobQueryArgsSchema, JobSchema, TriggerSchema
from orchestrator.services import job_output, jobs, targets
from orchestrator.services.fanout import FanoutOutcome

JOB_FILTERS = ("agent", "status", "script", "since", "until", "fanout_id", "pool", "cursor")
JOB_SCHEMA = JobSchema()
JOBS_PER_PAGE = 50


@bp.route("/jobs")
def jobs_list() -> tuple[str, int]:
    filters = query_args(*JOB_FILTERS)
    try:
        args = JobQueryArgsSchema().load({**filters, "limit": JOBS_PER_PAGE})
        found = jobs.list_jobs(args)
    except (ValidationError, ScriptMeshError) as exc:
        flash_error(exc)
        found = {"jobs": [], "next_cursor": None}
    shown = {k: v for k, v in filters.items() if k != "cursor"}
    return page("jobs.html", jobs=found["jobs"], next_cursor=found["next_cursor"],
                filters=shown, statuses=[s.value for s in JobStatus])


@bp.route("/jobs/<job_id>")
def job(job_id: str) -> tuple[str, int]:
    found = jobs.get_job(job_id)
    return page("job.html", job=found, data=JOB_SCHEMA.dump(found))


@bp.route("/jobs/<job_id>.json")
def job_json(job_id: str) -> Response:
    """``GET /jobs/{id}``'s body for the cookie session: the page's polling fallback."""
    return jsonify(JOB_SCHEMA.dump(jobs.get_job(job_id)))


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
def cancel_job(job_id: str) -> Response:
    try:
        _job, cancelled = jobs.cancel_job(job_id)
        db.session.commit()
        flash("Job cancelled." if cancelled else "Cancel requested: its agent is stopping it.",
              "ok")
    except ScriptMeshError as exc:
        flash_error(exc)
    return redirect(url_for("dashboard.job", job_id=job_id))


def rerun_data(job_data: dict[str, Any]) -> dict[str, Any]:
    """The trigger that runs the same thing on the same target again."""
    data: dict[str, Any] = {"timeout": job_data.get("timeout")}
    if job_data.get("pool"):
        data["pool"] = job_data["pool"]
    else:
        data["agent"] = job_data.get("agent")
    if job_data.get("kind") == "flow":
        data.update(run_flow=job_data.get("flow"), variables=job_data.get("variables") or {})
    else:
        data.update(run_script=job_data.get("script"), params=job_data.get("params") or {})
    return {k: v for k, v in data.items() if v is not None}


@bp.route("/jobs/<job_id>/rerun", methods=["POST"])
def rerun_job(job_id: str) -> Response:
    try:
        data = TriggerSchema().load(rerun_data(JOB_SCHEMA.dump(jobs.get_job(job_id))))
        outcome = targets.trigger(g.principal, data)
    except (ValidationError, ScriptMeshError) as exc:
        flash_error(exc)
        return redirect(url_for("dashboard.job", job_id=job_id))
    db.session.commit()
    if isinstance(outcome, FanoutOutcome):
        return redirect(url_for("dashboard.fanout", fanout_id=outcome.fanout.id))
    return redirect(url_for("dashboard.job", job_id=outcome.job.id))


@bp.route("/jobs/<job_id>/logs")
def job_stream(job_id: str) -> Response:
    """``GET /jobs/{id}/logs?follow=true`` for the cookie session (EventSource sends no
    Authorization header): the same event stream, from the same service."""
    after = request.args.get("after") or request.headers.get("Last-Event-ID")
    events = job_output.follow(job_id, after)
    return Response(stream_with_context(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
