"""Discord webhooks: one embed per notification."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    SEVERITY_COLORS,
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
    rebase,
    truncate,
)


class DiscordProvider(Provider):
    type = "discord"
    secret_fields = ("webhook_url",)
    required_fields = ("webhook_url",)
    url_fields = ("webhook_url",)

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
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
        url = rebase(target.setting("webhook_url"), target.config.get("base_url"))
        return json_request(url, payload)
