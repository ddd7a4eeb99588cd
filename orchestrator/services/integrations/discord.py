"""Discord webhooks: one embed per notification."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    SEVERITY_COLORS,
    IncomingWebhookProvider,
    Notification,
    Target,
    truncate,
)


class DiscordProvider(IncomingWebhookProvider):
    type = "discord"

    def message(self, notification: Notification, target: Target) -> dict:
        n = notification
        embed = {
            "title": truncate(n.title, 256),
            "description": truncate(n.text, 4096),
            "color": SEVERITY_COLORS.get(n.severity, SEVERITY_COLORS["info"]),
            "fields": [{"name": truncate(name, 256), "value": truncate(value or "-", 1024),
                        "inline": True} for name, value in list(n.fields.items())[:25]],
            "timestamp": n.iso_timestamp,
            "footer": {"text": f"ScriptMesh · {n.event_type}"},
        }
        payload = {"username": target.config.get("username", "ScriptMesh"), "embeds": [embed]}
        return payload
