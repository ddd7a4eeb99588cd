"""/auth/api-keys: mint, list, show and revoke ``sm_live_`` keys (admin scope)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import ApiKey, Scope
from orchestrator.schemas.auth import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeySchema,
    ApiKeyUpdateSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import api_keys

BEARER = [{"bearerAuth": []}]

blp = Blueprint("api_keys", __name__, url_prefix="/auth/api-keys",
                description="API keys for scripts, CI and agents")


@blp.route("")
class ApiKeys(MethodView):
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    @blp.doc(security=BEARER)
    @require_scope(Scope.ADMIN)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Create an API key; the raw key is in this response only

        ``scope`` is admin, operator (default), read or agent; ``expires_days``
        is optional (no expiry when absent).
        """
        return api_keys.create_api_key_for(current_principal(), **args)

    @blp.response(200, ApiKeySchema(many=True))
    @blp.doc(security=BEARER)
    @require_scope(Scope.ADMIN)
    def get(self) -> list[ApiKey]:
        """List this tenant's API keys (prefixes only, never the keys)"""
        return api_keys.list_api_keys()


@blp.route("/<string:key_id>")
class ApiKeyById(MethodView):
    @blp.response(200, ApiKeySchema)
    @blp.doc(security=BEARER)
    @require_scope(Scope.ADMIN)
    def get(self, key_id: str) -> ApiKey:
        """Show one API key (its prefix, never the key)"""
        return api_keys.get_api_key(key_id)

    @blp.arguments(ApiKeyUpdateSchema)
    @blp.response(200, ApiKeySchema)
    @blp.doc(security=BEARER)
    @require_scope(Scope.ADMIN)
    def patch(self, args: dict[str, Any], key_id: str) -> ApiKey:
        """Grant an agent key its pools, or rebind the agent name it acts as

        An agent key may register only with tags in its ``pools``; an agent
        name bound to one key cannot be claimed by another except through
        this call (the previous key loses the name).
        """
        return api_keys.update_api_key(key_id, args)

    @blp.response(204)
    @blp.doc(security=BEARER)
    @require_scope(Scope.ADMIN)
    def delete(self, key_id: str) -> None:
        """Revoke an API key: the next request made with it gets 401"""
        api_keys.revoke_api_key(key_id)
