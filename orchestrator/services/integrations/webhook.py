"""Generic webhook: the event as JSON, signed like completion webhooks.

The signature uses the integration's own ``secret`` when it has one, else
the tenant's webhook signing secret (``/settings/webhook-secret``).
"""

from __future__ import annotations

from orchestrator.services import signing
from orchestrator.services.integrations.base import (
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
    rebase,
)


class WebhookProvider(Provider):
    type = "webhook"
    secret_fields = ("secret",)
    required_fields = ("url",)
    url_fields = ("url",)

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        payload = {"id": n.event_id, "type": n.event_type, "created_at": n.iso_timestamp,
                   "title": n.title, "text": n.text, "severity": n.severity,
                   "action": n.action, "dedup_key": n.dedup_key, "data": n.data}
        request = json_request(rebase(target.config["url"], target.config.get("base_url")),
                               payload, headers={"X-ScriptMesh-Event": n.event_type})
        secret = target.secrets.get("secret")
        if not secret and n.tenant_id:
            secret = signing.signing_secret(n.tenant_id)
        if secret:
            request.headers.update(signing.signed_headers(secret, request.body))
        return request
