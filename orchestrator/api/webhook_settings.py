"""/settings/webhook-secret: the tenant's webhook signing secret (create once, rotate).

The secret signs completion webhooks and ``webhook`` integrations:
``X-ScriptMesh-Signature: sha256=HMAC-SHA256(secret, timestamp + "." + body)``.
It is returned only by the create and rotate calls.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.integrations import WebhookSecretCreatedSchema, WebhookSecretSchema
from orchestrator.security import current_principal, require_scope
from orchestrator.services import signing

blp = Blueprint("webhook_settings", __name__, url_prefix="/settings",
                description="Webhook signing secret")
BEARER = [{"bearerAuth": []}]


@blp.route("/webhook-secret")
class WebhookSecret(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, WebhookSecretSchema)
    @require_scope(Scope.READ)
    def get(self) -> dict[str, Any]:
        """Whether a signing secret exists and when it was made (never the secret)."""
        return signing.secret_info(current_principal().tenant_id)

    @blp.doc(security=BEARER)
    @blp.response(201, WebhookSecretCreatedSchema)
    @blp.alt_response(409, description="webhook_secret_exists: rotate instead")
    @require_scope(Scope.ADMIN)
    def post(self) -> dict[str, Any]:
        """Create the signing secret. It is shown in this response only: store it."""
        return signing.create_secret(current_principal().tenant_id)


@blp.route("/webhook-secret/rotate")
class WebhookSecretRotate(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, WebhookSecretCreatedSchema)
    @require_scope(Scope.ADMIN)
    def post(self) -> dict[str, Any]:
        """Replace the signing secret (deliveries from now on use the new one); the new
        secret is shown in this response only."""
        return signing.rotate_secret(current_principal().tenant_id)
