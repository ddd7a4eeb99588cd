"""``GET /metrics``: Prometheus text exposition, computed from the database at scrape time.

Nothing is counted in process memory, so every gunicorn worker and every hub
replica answers the same numbers (no multiprocess directory needed). The
numbers are the caller's tenant's (the tenant filter applies).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from orchestrator.extensions import db
from orchestrator.models import Delivery, Job, JobStatus, Schedule, utcnow
from orchestrator.services import agents
from orchestrator.services.integrations.prometheus import TEXT_CONTENT_TYPE

#: Dispatch latency (created -> handed to an agent) buckets, in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: The histogram covers jobs created in this window (at most ``LATENCY_SAMPLE`` of them).
LATENCY_WINDOW = timedelta(hours=24)
LATENCY_SAMPLE = 10_000

CONTENT_TYPE = TEXT_CONTENT_TYPE


class HubCollector(Collector):
    """Reads the current numbers from the database on every scrape."""

    def collect(self) -> Iterator[object]:
        yield self._jobs_by_status()
        yield from self._agents()
        yield self._dispatch_latency()
        yield from self._deliveries()
        yield self._schedules()

    def _jobs_by_status(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("scriptmesh_jobs", "Jobs by current status.",
                                   labels=["status"])
        counts = dict(db.session.execute(
            db.select(Job.status, sa.func.count(Job.id)).group_by(Job.status)).all())
        for status in JobStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        return family

    def _agents(self) -> Iterator[GaugeMetricFamily]:
        fleet = agents.list_agents()
        now = utcnow()
        online = sum(1 for agent in fleet if agents.is_online(agent, now))
        yield GaugeMetricFamily("scriptmesh_agents_online", "Agents online now.", value=online)
        yield GaugeMetricFamily("scriptmesh_agents", "Registered agents.", value=len(fleet))

    def _dispatch_latency(self) -> HistogramMetricFamily:
        since = utcnow() - LATENCY_WINDOW
        rows = db.session.execute(
            db.select(Job.created_at, Job.dispatched_at)
            .where(Job.created_at >= since, Job.dispatched_at.is_not(None))
            .order_by(Job.created_at.desc()).limit(LATENCY_SAMPLE)).all()
        latencies = [max(0.0, (d - c).total_seconds()) for c, d in rows]
        buckets = [(str(float(bound)), sum(1 for x in latencies if x <= bound))
                   for bound in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(latencies)))
        return HistogramMetricFamily(
            "scriptmesh_dispatch_latency_seconds",
            "Time from job creation to hand-over to an agent (jobs of the last 24 h).",
            buckets=buckets, sum_value=sum(latencies))

    def _deliveries(self) -> Iterator[CounterMetricFamily]:
        rows = db.session.execute(
            db.select(Delivery.kind, Delivery.success, sa.func.count(Delivery.id))
            .group_by(Delivery.kind, Delivery.success)).all()
        attempts = CounterMetricFamily("scriptmesh_delivery_attempts",
                                       "Webhook and notification delivery attempts.",
                                       labels=["kind", "outcome"])
        failures = CounterMetricFamily("scriptmesh_webhook_failures",
                                       "Failed completion-webhook delivery attempts.")
        failed_webhooks = 0
        for kind, success, count in rows:
            attempts.add_metric([kind, "success" if success else "failure"], count)
            if kind == "webhook" and not success:
                failed_webhooks += count
        failures.add_metric([], failed_webhooks)
        yield attempts
        yield failures

    def _schedules(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("scriptmesh_schedules", "Cron schedules.",
                                   labels=["enabled"])
        counts = dict(db.session.execute(
            db.select(Schedule.enabled, sa.func.count(Schedule.id))
            .group_by(Schedule.enabled)).all())
        family.add_metric(["true"], counts.get(True, 0))
        family.add_metric(["false"], counts.get(False, 0))
        return family


def render_metrics() -> bytes:
    """The text exposition of ``HubCollector`` for the current tenant."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector())
    return generate_latest(registry)
