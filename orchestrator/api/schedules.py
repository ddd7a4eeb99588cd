"""/schedules: cron schedules, their runs, pause/resume and run-now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.schedules import (
    BackfillAnswerSchema,
    BackfillSchema,
    MissedListSchema,
    RunNowSchema,
    ScheduleCreateSchema,
    SchedulePageSchema,
    SchedulePatchSchema,
    ScheduleQueryArgsSchema,
    ScheduleRunListSchema,
    ScheduleSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import scheduling

blp = Blueprint("schedules", __name__, description="Cron schedules")
BEARER = [{"bearerAuth": []}]


@blp.route("/schedules")
class ScheduleList(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ScheduleQueryArgsSchema, location="query")
    @blp.response(200, SchedulePageSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List cron schedules; page with ``cursor`` = ``next_cursor``."""
        return scheduling.list_schedules(args["limit"], args.get("cursor"))

    @blp.doc(security=BEARER)
    @blp.arguments(ScheduleCreateSchema)
    @blp.response(201, ScheduleSchema)
    @blp.alt_response(422, description="validation_error: details.fields names the bad field")
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a cron schedule.

        ``cron_expression`` has 5 fields (minute hour day-of-month month
        day-of-week) evaluated in ``timezone`` (default UTC). Give one target:
        ``agent``, ``agents``, ``tags`` or ``pool``, and what to run: ``script``
        (+ ``params``) or ``run_flow`` (+ ``variables``). When a job it creates ends, its
        ``webhook_url`` receives the full job result, signed.
        """
        return scheduling.create_schedule(current_principal(), data)


@blp.route("/schedules/<schedule_id>")
class ScheduleItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, ScheduleSchema)
    @require_scope(Scope.READ)
    def get(self, schedule_id: str) -> Any:
        """One schedule, with its next fire time."""
        return scheduling.get_schedule(schedule_id)

    @blp.doc(security=BEARER)
    @blp.arguments(SchedulePatchSchema)
    @blp.response(200, ScheduleSchema)
    @require_scope(Scope.OPERATOR)
    def patch(self, data: dict[str, Any], schedule_id: str) -> Any:
        """Change a schedule; a new expression or time zone recomputes ``next_fire``."""
        return scheduling.update_schedule(schedule_id, data)

    @blp.doc(security=BEARER)
    @blp.response(204)
    @require_scope(Scope.OPERATOR)
    def delete(self, schedule_id: str) -> None:
        """Delete a schedule (the jobs it created stay)."""
        scheduling.delete_schedule(schedule_id)


@blp.route("/schedules/<schedule_id>/pause")
class SchedulePause(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, ScheduleSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, schedule_id: str) -> Any:
        """Stop firing until resumed."""
        return scheduling.pause_schedule(schedule_id)


@blp.route("/schedules/<schedule_id>/resume")
class ScheduleResume(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, ScheduleSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, schedule_id: str) -> Any:
        """Fire again from the next due time (times passed while paused are not missed)."""
        return scheduling.resume_schedule(schedule_id)


@blp.route("/schedules/<schedule_id>/run-now")
class ScheduleRunNow(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(201, RunNowSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, schedule_id: str) -> Any:
        """Start the schedule's job(s) now, outside its timetable."""
        return scheduling.run_now(schedule_id)


@blp.route("/schedules/<schedule_id>/runs")
class ScheduleRuns(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, ScheduleRunListSchema)
    @require_scope(Scope.READ)
    def get(self, schedule_id: str) -> dict[str, Any]:
        """What happened at each fire time, newest first: the jobs created, skips
        (overlap), missed fire times (scheduler down) and failures."""
        return {"runs": scheduling.list_runs(schedule_id)}


@blp.route("/schedules/<schedule_id>/missed")
class ScheduleMissed(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, MissedListSchema)
    @require_scope(Scope.READ)
    def get(self, schedule_id: str) -> dict[str, Any]:
        """Missed fires, newest first: fire times the scheduler was too late for, and
        windows of ``expect_success_every`` without a successful run."""
        return {"missed": scheduling.missed_runs(schedule_id)}


@blp.route("/schedules/<schedule_id>/backfill")
class ScheduleBackfill(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(BackfillSchema)
    @blp.response(201, BackfillAnswerSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any], schedule_id: str) -> dict[str, Any]:
        """Run the schedule's fire times between ``from`` and ``to`` now, once each."""
        return {"runs": scheduling.backfill(schedule_id, _aware(data["from_"]),
                                             _aware(data["to"]))}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
