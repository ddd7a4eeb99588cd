"""/admin/integrations: instance-wide integrations (instance administrators only).

A global integration serves every tenant that has no integration of its type
for the event at hand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import GlobalIntegration, Scope
from orchestrator.schemas.integrations import (
    IntegrationCreateSchema,
    IntegrationListSchema,
    IntegrationPatchSchema,
    IntegrationSchema,
    IntegrationTestSchema,
)
from orchestrator.security import current_principal, require_instance_admin, require_scope
from orchestrator.services.integrations import connection, manage

blp = Blueprint("admin_integrations", __name__, url_prefix="/admin",
                description="Global integrations (instance administrators)")
BEARER = [{"bearerAuth": []}]


def instance_admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 unless the caller is an instance administrator (goes below ``require_scope``)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_instance_admin()
        return view(*args, **kwargs)

    return wrapper


@blp.route("/integrations")
class GlobalIntegrationList(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationListSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def get(self) -> dict[str, Any]:
        """Global integrations only."""
        return {"integrations": [manage.integration_view(row)
                                 for row in manage.list_integrations(GlobalIntegration)]}

    @blp.doc(security=BEARER)
    @blp.arguments(IntegrationCreateSchema)
    @blp.response(201, IntegrationSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a global integration (same body as ``POST /integrations``)."""
        return manage.integration_view(manage.create_integration(GlobalIntegration, data))


@blp.route("/integrations/<integration_id>")
class GlobalIntegrationItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def get(self, integration_id: str) -> dict[str, Any]:
        """One global integration."""
        return manage.integration_view(manage.get_integration(GlobalIntegration, integration_id))

    @blp.doc(security=BEARER)
    @blp.arguments(IntegrationPatchSchema)
    @blp.response(200, IntegrationSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def patch(self, data: dict[str, Any], integration_id: str) -> dict[str, Any]:
        """Change a global integration; replaces only the secrets it names."""
        return manage.integration_view(
            manage.update_integration(GlobalIntegration, integration_id, data))

    @blp.doc(security=BEARER)
    @blp.response(204)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def delete(self, integration_id: str) -> None:
        """Delete a global integration."""
        manage.delete_integration(GlobalIntegration, integration_id)


@blp.route("/integrations/<integration_id>/test")
class GlobalIntegrationTest(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IntegrationTestSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def post(self, integration_id: str) -> dict[str, Any]:
        """Send a real test message now; records last_test_at/status/error."""
        return connection.test_integration(GlobalIntegration, integration_id,
                                       current_principal().tenant_id)
