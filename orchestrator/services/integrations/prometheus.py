"""Prometheus Pushgateway: gauges in the text exposition format, one group per subject.

Job events replace the group ``/metrics/job/<job>/agent/<agent>/script/<script>``
with the last run's outcome; agent events set ``scriptmesh_agent_up`` under
``/metrics/job/<job>/agent/<agent>``. Alert on them with ordinary rules, e.g.
``scriptmesh_job_last_success == 0``.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from orchestrator.services.integrations.base import (
    Notification,
    OutboundRequest,
    Provider,
    Target,
)

#: The classic text format every Prometheus and Pushgateway version reads.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def grouping_path(job: str, labels: list[tuple[str, str]]) -> str:
    """``/metrics/job/<job>/<label>/<value>...``; values with ``/`` use ``@base64``."""
    parts = ["metrics", *_pair("job", job)]
    for name, value in labels:
        parts += _pair(name, value)
    return "/" + "/".join(parts)


def _pair(name: str, value: str) -> list[str]:
    if not value or "/" in value:
        encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
        return [f"{name}@base64", encoded]
    return [name, quote(value, safe="")]


def _gauge(registry: CollectorRegistry, name: str, doc: str, value: float) -> None:
    Gauge(name, doc, registry=registry).set(value)


class PrometheusProvider(Provider):
    type = "prometheus"
    secret_fields = ("password",)
    required_fields = ("url",)
    url_fields = ("url",)

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        n = notification
        registry = CollectorRegistry()
        labels = self._metrics(n, registry)
        job = str(target.config.get("job") or "scriptmesh")
        base = str(target.config.get("base_url") or target.config.get("url")).rstrip("/")
        headers = {"Content-Type": TEXT_CONTENT_TYPE}
        if target.config.get("username"):
            raw = f"{target.config['username']}:{target.setting('password') or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        return OutboundRequest("PUT", base + grouping_path(job, labels), headers,
                               generate_latest(registry))

    def _metrics(self, n: Notification, registry: CollectorRegistry) -> list[tuple[str, str]]:
        """Fill ``registry`` for ``n``; return the grouping labels."""
        now = n.timestamp.timestamp()
        data = n.data
        if n.event_type.startswith("job."):
            _gauge(registry, "scriptmesh_job_last_success",
                   "1 if the last run succeeded, else 0.", 1 if data.get("status") == "success"
                   else 0)
            if data.get("exit_code") is not None:
                _gauge(registry, "scriptmesh_job_last_exit_code", "Exit code of the last run.",
                       data["exit_code"])
            if data.get("duration_ms") is not None:
                _gauge(registry, "scriptmesh_job_last_duration_seconds",
                       "Duration of the last run.", data["duration_ms"] / 1000)
            _gauge(registry, "scriptmesh_job_last_completion_timestamp_seconds",
                   "When the last run ended.", now)
            return [("agent", str(data.get("agent") or "")),
                    ("script", str(data.get("script") or ""))]
        if n.event_type.startswith("agent."):
            _gauge(registry, "scriptmesh_agent_up", "1 while the agent is online.",
                   1 if n.event_type == "agent.online" else 0)
            _gauge(registry, "scriptmesh_agent_last_change_timestamp_seconds",
                   "When the agent last went online or offline.", now)
            return [("agent", str(data.get("agent") or n.source))]
        if n.event_type == "schedule.missed":
            _gauge(registry, "scriptmesh_schedule_missed_fires",
                   "Fire times missed in the last detection.", data.get("missed", 1))
            _gauge(registry, "scriptmesh_schedule_last_missed_timestamp_seconds",
                   "When a missed fire was last detected.", now)
            return [("schedule", str(data.get("schedule_id") or ""))]
        _gauge(registry, "scriptmesh_event_last_timestamp_seconds",
               "When this kind of event last happened.", now)
        return [("event", n.event_type.replace(".", "_"))]
