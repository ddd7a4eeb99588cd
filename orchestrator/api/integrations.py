"""/integrations: the tenant's notification integrations (Slack, PagerDuty, ...)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Integration, Scope
from orchestrator.schemas.integrations import (
    IntegrationCreateSchema,
    IntegrationListSchema,
    IntegrationPatchSchema,
    IntegrationSchema,
    IntegrationTestSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services.integrations import connection, manage

blp = Blueprint("integrations", __name__, description="Notification integrations")
BEARER = [{"bearerAuth": []}]


@blp.route("/integrations")
class IntegrationList(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationListSchema)
    @require_scope(Scope.READ)
    def get(self) -> dict[str, Any]:
        """The tenant's integrations, then the instance's global ones (``scope: global``),
        which apply to event types the tenant has no integration of that type for."""
        return {"integrations": manage.tenant_integration_views()}

    @blp.doc(security=BEARER)
    @blp.arguments(IntegrationCreateSchema)
    @blp.response(201, IntegrationSchema)
    @require_scope(Scope.ADMIN)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add an integration. Types: slack, discord, teams, pagerduty, datadog, splunk,
        prometheus, webhook. Secrets are stored encrypted and shown only as "configured".
        ``config.base_url`` sends to a self-hosted or test endpoint instead."""
        return manage.integration_view(manage.create_integration(Integration, data))


@blp.route("/integrations/<integration_id>")
class IntegrationItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationSchema)
    @require_scope(Scope.READ)
    def get(self, integration_id: str) -> dict[str, Any]:
        """One integration (secrets shown as "configured")."""
        return manage.integration_view(manage.get_integration(Integration, integration_id))

    @blp.doc(security=BEARER)
    @blp.arguments(IntegrationPatchSchema)
    @blp.response(200, IntegrationSchema)
    @require_scope(Scope.ADMIN)
    def patch(self, data: dict[str, Any], integration_id: str) -> dict[str, Any]:
        """Change name, enabled or config keys; replaces only the secrets it names."""
        return manage.integration_view(
            manage.update_integration(Integration, integration_id, data))

    @blp.doc(security=BEARER)
    @blp.response(204)
    @require_scope(Scope.ADMIN)
    def delete(self, integration_id: str) -> None:
        """Delete an integration."""
        manage.delete_integration(Integration, integration_id)


@blp.route("/integrations/<integration_id>/test")
class IntegrationTest(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationTestSchema)
    @require_scope(Scope.ADMIN)
    def post(self, integration_id: str) -> dict[str, Any]:
        """Send a real test message now; records last_test_at/status/error."""
        return connection.test_integration(Integration, integration_id,
                                       current_principal().tenant_id)
