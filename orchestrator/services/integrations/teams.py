"""Microsoft Teams incoming webhooks: a legacy MessageCard (accepted by connectors and
Workflows' "post to a channel when a webhook request is received")."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    SEVERITY_COLORS,
    IncomingWebhookProvider,
    Notification,
    Target,
)


class TeamsProvider(IncomingWebhookProvider):
    type = "teams"

    def message(self, notification: Notification, target: Target) -> dict:
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
        return card
