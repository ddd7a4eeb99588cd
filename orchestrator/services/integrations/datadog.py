"""Datadog Events API (v1 ``POST /api/v1/events``), authenticated with ``DD-API-KEY``."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
    truncate,
)

ALERT_TYPES = {"critical": "error", "error": "error", "warning": "warning", "info": "info",
               "success": "success"}


class DatadogProvider(Provider):
    type = "datadog"
    secret_fields = ("api_key",)
    required_fields = ("api_key",)

    def base_url(self, target: Target) -> str:
        """``config.base_url``, else ``https://api.<config.site>`` (default datadoghq.com)."""
        site = target.config.get("site") or "datadoghq.com"
        return str(target.config.get("base_url") or f"https://api.{site}").rstrip("/")

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        facts = "\n".join(f"**{name}**: {value}" for name, value in n.fields.items())
        tags = [f"event:{n.event_type}", "source:scriptmesh"]
        tags += [f"{key}:{n.data[key]}" for key in ("agent", "script") if n.data.get(key)]
        tags += [str(tag) for tag in target.config.get("tags") or []]
        payload = {
            "title": truncate(n.title, 100),
            "text": truncate(f"%%% \n{n.text}\n\n{facts}\n %%%", 4000),
            "alert_type": ALERT_TYPES.get(n.severity, "info"),
            "priority": "normal",
            "source_type_name": "scriptmesh",
            "aggregation_key": truncate(n.dedup_key, 100),
            "date_happened": int(n.timestamp.timestamp()),
            "host": n.source,
            "tags": tags,
        }
        return json_request(self.base_url(target) + "/api/v1/events", payload,
                            headers={"DD-API-KEY": target.setting("api_key")})
