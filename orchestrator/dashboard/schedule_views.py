"""Schedules: list with next fire times, create/edit with the cron in words and its next 5
fires, pause/resume, run now, delete, and the run history (missed fires included)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, jsonify, redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from orchestrator.dashboard import bp
from orchestrator.dashboard.cron_text import cron_preview, describe_cron, next_fires
from orchestrator.dashboard.pages import flash_error, page
from orchestrator.dashboard.run_form import parse_lines, split_words
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db
from orchestrator.schemas.schedules import ScheduleCreateSchema, SchedulePatchSchema
from orchestrator.services import scheduling

SCHEDULES_PER_PAGE = 100


def schedule_data(form: Any) -> dict[str, Any]:
    """The ``POST /schedules`` body the create form describes."""
    data: dict[str, Any] = {"cron_expression": form.get("cron_expression", "").strip(),
                            "timezone": form.get("timezone", "").strip() or "UTC",
                            "overlap_policy": form.get("overlap_policy") or "skip"}
    if form.get("name", "").strip():
        data["name"] = form["name"].strip()
    target, value = form.get("target", "agent"), form.get("value", "").strip()
    if target == "tags":
        data["tags"] = split_words(value)
    elif target == "pool":
        data["pool"] = value
    else:
        data["agent"] = value
    extra = parse_lines(form.get("extra", ""))
    if form.get("kind") == "flow":
        data.update(run_flow=form.get("name_run", "").strip(), variables=extra)
    else:
        data.update(script=form.get("name_run", "").strip(), params=extra)
    return data


@bp.route("/schedules", methods=["GET", "POST"])
def schedules() -> Response | tuple[str, int]:
    status = 200
    if request.method == "POST":
        try:
            data = ScheduleCreateSchema().load(schedule_data(request.form))
            created = scheduling.create_schedule(g.principal, data)
            db.session.commit()
            flash("Schedule created.", "ok")
            return redirect(url_for("dashboard.schedule", schedule_id=created.id))
        except (ValidationError, ScriptMeshError) as exc:
            flash_error(exc)
            status = 422
    found = scheduling.list_schedules(SCHEDULES_PER_PAGE, request.args.get("cursor") or None)
    form = request.form if request.method == "POST" else {}
    preview = cron_preview(form.get("cron_expression", ""), form.get("timezone", "UTC")) \
        if form.get("cron_expression") else None
    return page("schedules.html", status, schedules=found["schedules"],
                next_cursor=found["next_cursor"], form=form, preview=preview,
                describe=describe_cron)


@bp.route("/schedules/preview.json")
def schedule_preview() -> Response:
    return jsonify(cron_preview(request.args.get("cron", ""), request.args.get("tz", "UTC")))


@bp.route("/schedules/<schedule_id>", methods=["GET", "POST"])
def schedule(schedule_id: str) -> Response | tuple[str, int]:
    found = scheduling.get_schedule(schedule_id)
    if request.method == "POST":
        patch = {k: request.form[k].strip() for k in ("name", "cron_expression", "timezone")
                 if request.form.get(k, "").strip()}
        try:
            scheduling.update_schedule(schedule_id, SchedulePatchSchema().load(patch))
            db.session.commit()
            flash("Schedule updated.", "ok")
            return redirect(url_for("dashboard.schedule", schedule_id=schedule_id))
        except (ValidationError, ScriptMeshError) as exc:
            db.session.rollback()
            flash_error(exc)
            found = scheduling.get_schedule(schedule_id)
    fires = next_fires(found.cron_expression, found.timezone) if found.enabled else []
    return page("schedule.html", schedule=found, fires=fires,
                description=describe_cron(found.cron_expression),
                runs=scheduling.list_runs(schedule_id))


@bp.route("/schedules/<schedule_id>/<action>", methods=["POST"])
def schedule_action(schedule_id: str, action: str) -> Response:
    actions = {"pause": (scheduling.pause_schedule, "Paused."),
               "resume": (scheduling.resume_schedule, "Resumed."),
               "run-now": (scheduling.run_now, "Started now, outside the timetable."),
               "delete": (scheduling.delete_schedule, "Deleted (its jobs stay).")}
    if action not in actions:
        flash(f"Unknown action {action!r}.", "error")
        return redirect(url_for("dashboard.schedule", schedule_id=schedule_id))
    call, message = actions[action]
    try:
        call(schedule_id)
        db.session.commit()
        flash(message, "ok")
    except ScriptMeshError as exc:
        flash_error(exc)
    if action == "delete":
        return redirect(url_for("dashboard.schedules"))
    return redirect(url_for("dashboard.schedule", schedule_id=schedule_id))
