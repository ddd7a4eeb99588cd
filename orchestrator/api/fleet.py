"""Fleet operations: pause/resume/drain agents, steer fan-out rollouts, read the audit log."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from orchestrator.api import Blueprint, committed
from orchestrator.api.fanouts import fanout_answer
from orchestrator.models import Scope
from orchestrator.schemas.agents import AgentSchema
from orchestrator.schemas.fanouts import FanoutCreatedSchema, FanoutReportSchema
from orchestrator.schemas.fleet import (
    AgentPauseSchema,
    AuditPageSchema,
    AuditQueryArgsSchema,
    FanoutRerunSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import agent_control, audit, fanout_report, rollout

blp = Blueprint("fleet", __name__, description="Fleet operations: agent control, rollouts, "
                                               "audit log")
BEARER = [{"bearerAuth": []}]


@blp.route("/agents/<name>/pause")
class AgentPause(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(AgentPauseSchema)
    @blp.response(200, AgentSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any], name: str) -> Any:
        """Pause an agent: it gets no new job (pools, fan-outs and schedules pass it over)
        until resumed or ``until``; running jobs finish."""
        return committed(agent_control.pause_agent(current_principal(), name,
                                                   data.get("note"), data.get("until")))


@blp.route("/agents/<name>/resume")
class AgentResume(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, AgentSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, name: str) -> Any:
        """Resume a paused (or draining) agent."""
        return committed(agent_control.resume_agent(name))


@blp.route("/agents/<name>/drain")
class AgentDrain(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(AgentPauseSchema)
    @blp.response(200, AgentSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any], name: str) -> Any:
        """Drain an agent: paused, then deregistered once it runs nothing."""
        return committed(agent_control.drain_agent(current_principal(), name,
                                                   data.get("note")))


def _report(fanout_id: str) -> dict[str, Any]:
    return fanout_report.fanout_report(fanout_id)


@blp.route("/fanouts/<fanout_id>/approve")
class FanoutApprove(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, FanoutReportSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, fanout_id: str) -> dict[str, Any]:
        """Let the stage waiting in ``awaiting_approval`` start (409 if none waits)."""
        committed(rollout.approve(fanout_id))
        return _report(fanout_id)


@blp.route("/fanouts/<fanout_id>/pause")
class FanoutPause(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, FanoutReportSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, fanout_id: str) -> dict[str, Any]:
        """Pause a rollout: no new target starts; running ones finish."""
        committed(rollout.pause(fanout_id))
        return _report(fanout_id)


@blp.route("/fanouts/<fanout_id>/resume")
class FanoutResume(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, FanoutReportSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, fanout_id: str) -> dict[str, Any]:
        """Resume a paused rollout."""
        committed(rollout.resume(fanout_id))
        return _report(fanout_id)


@blp.route("/fanouts/<fanout_id>/rerun")
class FanoutRerun(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(FanoutRerunSchema)
    @blp.response(202, FanoutCreatedSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any], fanout_id: str) -> Response:
        """A new fan-out (``rerun_of`` this one) over just the targets in ``only``."""
        return fanout_answer(committed(rollout.rerun(current_principal(), fanout_id,
                                                     data["only"])))


@blp.route("/audit")
class AuditLog(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(AuditQueryArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    @require_scope(Scope.ADMIN)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Who did what, newest first: filter by action, actor, subject, since/until; page
        with ``cursor`` = ``next_cursor``. Needs an admin key."""
        return audit.list_entries(args)
