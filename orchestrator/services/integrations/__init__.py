"""Notification providers, one module per service; ``PROVIDERS`` maps type -> provider."""

from __future__ import annotations

from orchestrator.services.integrations.base import Provider
from orchestrator.services.integrations.datadog import DatadogProvider
from orchestrator.services.integrations.discord import DiscordProvider
from orchestrator.services.integrations.pagerduty import PagerDutyProvider
from orchestrator.services.integrations.prometheus import PrometheusProvider
from orchestrator.services.integrations.slack import SlackProvider
from orchestrator.services.integrations.splunk import SplunkProvider
from orchestrator.services.integrations.teams import TeamsProvider
from orchestrator.services.integrations.webhook import WebhookProvider

PROVIDERS: dict[str, Provider] = {
    provider.type: provider
    for provider in (SlackProvider(), DiscordProvider(), TeamsProvider(), PagerDutyProvider(),
                     DatadogProvider(), SplunkProvider(), PrometheusProvider(),
                     WebhookProvider())
}

INTEGRATION_TYPES = tuple(PROVIDERS)
