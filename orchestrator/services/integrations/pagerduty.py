"""PagerDuty Events API v2: trigger on failures, resolve on recovery, one dedup_key per problem.

An integration subscribed to ``job.failed`` or ``job.timeout`` also receives
``job.succeeded`` (as a resolve), and one subscribed to ``agent.offline``
receives ``agent.online``: the incident closes when the next run succeeds or
the agent comes back.
"""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    Notification,
    OutboundRequest,
    Provider,
    Target,
    json_request,
    truncate,
)

ENQUEUE_PATH = "/v2/enqueue"
SEVERITIES = {"critical": "critical", "error": "error", "warning": "warning"}
#: Recovery events and the failure events whose incidents they resolve.
RESOLVES = {"job.succeeded": ("job.failed", "job.timeout"), "agent.online": ("agent.offline",)}


class PagerDutyProvider(Provider):
    type = "pagerduty"
    secret_fields = ("routing_key",)
    required_fields = ("routing_key",)
    default_base_url = "https://events.pagerduty.com"

    def subscribes(self, event_type: str, events: list[str]) -> bool:
        if event_type in events:
            return True
        return any(trigger in events for trigger in RESOLVES.get(event_type, ()))

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        url = self.base_url(target) + ENQUEUE_PATH
        body: dict = {"routing_key": target.setting("routing_key"), "dedup_key": n.dedup_key}
        if n.action == "resolve":
            body["event_action"] = "resolve"
            return json_request(url, body)
        body["event_action"] = "trigger"
        body["client"] = "ScriptMesh"
        body["payload"] = {
            "summary": truncate(n.title, 1024),
            "source": n.source,
            "severity": SEVERITIES.get(n.severity, "info"),
            "timestamp": n.iso_timestamp,
            "component": n.data.get("script"),
            "group": n.data.get("agent"),
            "class": n.event_type,
            "custom_details": {**n.fields, "details": n.text},
        }
        return json_request(url, body)
