"""Microsoft Teams incoming webhooks: a legacy MessageCard (accepted by connectors and
Workflows' "post to a channel when a webhook request is received")."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    SEVERITY_COLORS,
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
    rebase,
)


class TeamsProvider(Provider):
    type = "teams"
    secret_fields = ("webhook_url",)
    required_fields = ("webhook_url",)
    url_fields = ("webhook_url",)

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        card = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": n.title,
            "themeColor": f"{SEVERITY_COLORS.get(n.severity, SEVERITY_COLORS['info']):06X}",
            "title": n.title,
            "sections": [{
                "activityTitle": n.title,
                "activitySubtitle": f"ScriptMesh · {n.event_type} · {n.iso_timestamp}",
                "facts": [{"name": name, "value": value} for name, value in n.fields.items()],
                "text": n.text,
                "markdown": True,
            }],
        }
        url = rebase(target.setting("webhook_url"), target.config.get("base_url"))
        return json_request(url, card)
