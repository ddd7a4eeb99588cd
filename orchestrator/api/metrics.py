"""GET /metrics/json: agent health and execution metrics of the caller's tenant."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.metrics import MetricsSchema
from orchestrator.security import require_scope
from orchestrator.services import metrics

blp = Blueprint("metrics", __name__, description="Fleet and execution metrics")


@blp.route("/metrics/json")
class MetricsJson(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MetricsSchema)
    @require_scope(Scope.READ)
    def get(self) -> dict[str, Any]:
        """Agents online/offline, jobs by status, queue depths per agent, and p50/p95/p99
        of dispatch latency (created -> started) and run duration over recent jobs."""
        return metrics.collect_metrics()
