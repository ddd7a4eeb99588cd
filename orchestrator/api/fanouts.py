"""/fanouts: run a script on many agents at once, follow the rollout, diff the results."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.fanouts import (
    FanoutCreatedSchema,
    FanoutCreateSchema,
    FanoutPageSchema,
    FanoutQueryArgsSchema,
    FanoutReportSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import fanout, fanout_report

blp = Blueprint("fanouts", __name__, description="Fan-out: one script on many agents")
BEARER = [{"bearerAuth": []}]
CREATED_SCHEMA = FanoutCreatedSchema()


def fanout_answer(outcome: fanout.FanoutOutcome) -> Response:
    """202 ``{fanout_id, jobs, skipped}`` (200 for a repeated idempotency key).

    Shared with ``POST /trigger-script``, whose declared schema is the one-job answer.
    """
    response = jsonify(CREATED_SCHEMA.dump(outcome.answer()))
    response.status_code = 202 if outcome.created else 200
    return response


@blp.route("/fanouts")
class FanoutList(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(FanoutCreateSchema)
    @blp.response(202, FanoutCreatedSchema, description="Created: one job per target agent")
    @blp.alt_response(200, schema=FanoutCreatedSchema,
                      description="The fan-out of a repeated idempotency_key")
    @blp.alt_response(422, description="no_targets: the selection matched no agent that can "
                                       "run the script now")
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> Response:
        """Run a script on every selected agent: one ordinary job per agent.

        Select by ``agents`` (names) and/or ``tags`` (an agent must carry all
        of them), or by canary ``stages``. ``max_concurrency`` and
        ``max_errors`` take a count or ``"N%"``. Agents that are offline (with
        ``only_online``, the default) or lack the script are listed in
        ``skipped``. Needs scope ``operator``.
        """
        return fanout_answer(fanout.create_fanout(current_principal(), data))

    @blp.doc(security=BEARER)
    @blp.arguments(FanoutQueryArgsSchema, location="query")
    @blp.response(200, FanoutPageSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List fan-outs, newest first; page with ``cursor`` = ``next_cursor``."""
        return fanout_report.list_fanouts(args)


@blp.route("/fanouts/<fanout_id>")
class FanoutById(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, FanoutReportSchema)
    @require_scope(Scope.READ)
    def get(self, fanout_id: str) -> dict[str, Any]:
        """A fan-out's progress: counts by status, stages, one row per agent, and the diff.

        The diff groups agents by identical (status, exit_code, stdout), each
        group's output shown once, largest group first.
        """
        return fanout_report.fanout_report(fanout_id)


@blp.route("/fanouts/<fanout_id>/cancel")
class CancelFanout(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, FanoutReportSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, fanout_id: str) -> dict[str, Any]:
        """Cancel every unfinished job: pending ones at once, running ones are killed."""
        return fanout_report.cancel_and_report(fanout_id)
