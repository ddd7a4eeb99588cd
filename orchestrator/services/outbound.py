"""Outbound HTTP for webhooks and integrations: target checks, one attempt, retries.

Every attempt is recorded as a ``Delivery`` row. Errors are reduced to a short
reason: exception texts from ``requests`` contain the full URL, and a Slack
or Discord webhook URL is itself a secret.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app

from orchestrator.models import utcnow
from orchestrator.services.outbox import RetryLater

log = logging.getLogger(__name__)
# urllib3 logs every request line, path included, at DEBUG; Slack/Discord/Teams webhook
# paths are secrets, so its request log never goes below INFO.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

USER_AGENT = "ScriptMesh-Hooks/1.0"


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt gave."""

    success: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    #: False when trying again cannot help (a blocked or malformed target).
    retryable: bool = True


class BlockedTarget(ValueError):
    """A target URL the hub refuses to call."""


def check_target(url: str) -> None:
    """Refuse non-HTTP(S) URLs and, with ``WEBHOOK_BLOCK_PRIVATE``, private addresses.

    :raises BlockedTarget: with a reason that does not repeat the URL.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget("must be an http:// or https:// URL with a host")
    if not current_app.config.get("WEBHOOK_BLOCK_PRIVATE"):
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise BlockedTarget(f"host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise BlockedTarget(f"host {parts.hostname!r} resolves to a loopback, private or "
                                "reserved address (WEBHOOK_BLOCK_PRIVATE is on)")


def describe_target(url: str) -> str:
    """Scheme and host only, for records and logs."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "?"


def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """One attempt: 2xx is success; anything else (redirects included) is a failure."""
    try:
        check_target(url)
    except BlockedTarget as exc:
        return Outcome(False, error=f"blocked: {exc}", retryable=False)
    started = time.monotonic()
    try:
        response = requests.request(
            method, url, data=body, headers={"User-Agent": USER_AGENT, **headers},
            timeout=float(current_app.config.get("WEBHOOK_TIMEOUT", 10)), allow_redirects=False,
        )
    except requests.Timeout:
        return Outcome(False, error="timeout", duration_ms=_ms(started))
    except requests.ConnectionError:
        return Outcome(False, error="connection failed", duration_ms=_ms(started))
    except requests.RequestException as exc:
        return Outcome(False, error=type(exc).__name__, duration_ms=_ms(started))
    ok = 200 <= response.status_code < 300
    return Outcome(ok, response.status_code, None if ok else f"HTTP {response.status_code}",
                   _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delays() -> list[int]:
    """Seconds before each retry (``WEBHOOK_RETRY_DELAYS``); attempts = retries + 1."""
    raw = current_app.config.get("WEBHOOK_RETRY_DELAYS", "")
    if isinstance(raw, list | tuple):
        return [int(x) for x in raw]
    return [int(x) for x in str(raw).split(",") if x.strip()]


def retry_if_worth_it(record: Any, outcome: Outcome, attempt: int) -> None:
    """After a failed attempt with a retry left, note when on ``record`` (a ``Delivery``)
    and raise ``RetryLater`` for the outbox; otherwise return."""
    delays = retry_delays()
    if outcome.success or not outcome.retryable or attempt > len(delays):
        return
    delay = max(0, delays[attempt - 1])
    record.next_retry_at = utcnow() + timedelta(seconds=delay)
    raise RetryLater(outcome.error or "failed", delay)
