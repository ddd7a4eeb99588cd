"""GET /jobs/{job_id}/deliveries: every webhook and notification attempt about a job."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.integrations import DeliveryListSchema
from orchestrator.security import require_scope
from orchestrator.services import webhooks

blp = Blueprint("deliveries", __name__, description="Webhook and notification deliveries")


@blp.route("/jobs/<job_id>/deliveries")
class JobDeliveries(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, DeliveryListSchema)
    @require_scope(Scope.READ)
    def get(self, job_id: str) -> dict[str, Any]:
        """Delivery attempts of the job's completion webhook and notifications, oldest
        first: time, attempt, status code, error, duration, next retry."""
        return {"deliveries": webhooks.list_deliveries(job_id)}
