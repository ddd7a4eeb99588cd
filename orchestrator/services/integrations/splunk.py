"""Splunk HTTP Event Collector: ``POST <url>/services/collector/event`` with ``Splunk <token>``."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
)

COLLECTOR_PATH = "/services/collector/event"


class SplunkProvider(Provider):
    type = "splunk"
    secret_fields = ("token",)
    required_fields = ("url", "token")
    url_fields = ("url",)

    def base_url(self, target: Target) -> str:
        return str(target.config.get("base_url") or target.config.get("url") or "").rstrip("/")

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        url = self.base_url(target)
        if not url.endswith(COLLECTOR_PATH):
            url += COLLECTOR_PATH
        payload: dict = {
            "time": round(n.timestamp.timestamp(), 3),
            "host": n.source,
            "source": target.config.get("source", "scriptmesh"),
            "sourcetype": target.config.get("sourcetype", "_json"),
            "event": {"event_type": n.event_type, "title": n.title, "severity": n.severity,
                      "action": n.action, "event_id": n.event_id, "fields": n.fields,
                      "text": n.text, **n.data},
        }
        if target.config.get("index"):
            payload["index"] = target.config["index"]
        return json_request(url, payload,
                            headers={"Authorization": f"Splunk {target.setting('token')}"})
