"""GET /health: liveness of the hub and its two backing services (no auth)."""

from __future__ import annotations

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.schemas.health import HealthSchema
from orchestrator.services import health

blp = Blueprint("health", __name__, description="Service health")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="Database or Redis unreachable")
    def get(self):
        """Hub health: database and Redis reachability. 503 when either is down."""
        report = health.check()
        return report, (200 if report["status"] == "ok" else 503)
