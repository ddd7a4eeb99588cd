"""What every notification provider shares: the message, the resolved target, the request.

A provider turns a ``Notification`` (provider-neutral: title, text, severity,
facts, a stable ``dedup_key``) into one HTTP request in its service's own API.
It never sends: ``orchestrator.services.notify`` sends and records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

#: Colours per severity (Discord/Teams/Slack attachments).
SEVERITY_COLORS = {"critical": 0xD0021B, "error": 0xE01E5A, "warning": 0xECB22E,
                   "info": 0x439FE0, "success": 0x2EB67D}


@dataclass(frozen=True)
class Notification:
    """One event, ready for any provider."""

    event_type: str
    title: str
    text: str
    #: "critical", "error", "warning", "info" or "success".
    severity: str
    #: "trigger" (something is wrong), "resolve" (it recovered) or "info".
    action: str
    #: Stable per problem (e.g. per schedule, or agent+script) so a resolve closes its trigger.
    dedup_key: str
    #: The machine concerned: an agent name, or "scriptmesh".
    source: str
    timestamp: datetime
    fields: dict[str, str] = field(default_factory=dict)
    #: Structured facts (agent, script, status, exit_code, duration_ms, job_id, ...).
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    tenant_id: str | None = None

    @property
    def iso_timestamp(self) -> str:
        return self.timestamp.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Target:
    """An integration resolved for sending: its settings with secrets decrypted."""

    id: str
    type: str
    name: str
    config: dict[str, Any]
    secrets: dict[str, str]
    tenant_id: str | None = None

    def setting(self, name: str, default: Any = None) -> Any:
        """A secret or config value (secrets first)."""
        if name in self.secrets:
            return self.secrets[name]
        return self.config.get(name, default)


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class Provider:
    """Base of the providers; subclasses set the class attributes and ``build``."""

    type: ClassVar[str]
    #: Fields stored encrypted and never shown (they may be sent in config or secrets).
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields an integration of this type must have (in config or secrets).
    required_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields that must be http(s) URLs.
    url_fields: ClassVar[tuple[str, ...]] = ()
    #: Where the service's API lives; ``config.base_url`` overrides it.
    default_base_url: ClassVar[str | None] = None

    def subscribes(self, event_type: str, events: list[str]) -> bool:
        """Whether an integration subscribed to ``events`` receives ``event_type``."""
        return event_type in events

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        raise NotImplementedError

    def base_url(self, target: Target) -> str:
        return str(target.config.get("base_url") or self.default_base_url or "").rstrip("/")


def json_request(url: str, payload: Any, headers: dict[str, str] | None = None,
                 method: str = "POST") -> OutboundRequest:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return OutboundRequest(method, url, {"Content-Type": "application/json", **(headers or {})},
                           body)


def rebase(url: str, base_url: str | None) -> str:
    """``url`` with its scheme and host replaced by ``base_url`` (self-hosted or test endpoints).

    ``rebase("https://hooks.slack.com/services/T/B/X", "http://127.0.0.1:9000")``
    is ``http://127.0.0.1:9000/services/T/B/X``.
    """
    if not base_url:
        return url
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return base_url.rstrip("/") + path


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class IncomingWebhookProvider(Provider):
    """A chat service reached through a secret incoming-webhook URL (Slack, Discord, Teams).

    Subclasses build only the service's message; ``post`` sends it to the
    stored URL, rebased onto ``config.base_url`` when one is set.
    """

    secret_fields = ("webhook_url",)
    required_fields = ("webhook_url",)
    url_fields = ("webhook_url",)

    def build(self, notification: Notification, target: Target) -> OutboundRequest:
        url = rebase(target.setting("webhook_url"), target.config.get("base_url"))
        return json_request(url, self.message(notification, target))

    def message(self, notification: Notification, target: Target) -> dict[str, Any]:
        raise NotImplementedError
