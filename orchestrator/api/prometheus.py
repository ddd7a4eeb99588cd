"""GET /metrics: Prometheus text format (scrape with the API key as bearer token)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.security import require_scope
from orchestrator.services import prometheus

blp = Blueprint("prometheus", __name__, description="Prometheus metrics")


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(security=[{"bearerAuth": []}], responses={
        "200": {"description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}})
    @require_scope(Scope.READ)
    def get(self) -> Response:
        """Jobs by status, dispatch-latency histogram, agents online, webhook failures and
        schedules of the caller's tenant, computed at scrape time (same on every worker).

        Prometheus: ``authorization: {credentials: sm_live_...}`` in the scrape config.
        """
        return Response(prometheus.render_metrics(), mimetype=None,
                        content_type=prometheus.CONTENT_TYPE)
