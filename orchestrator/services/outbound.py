"""Outbound HTTP for webhooks and integrations: target policy, one attempt, retries.

The policy: the hub calls public addresses only. Loopback, private,
link-local (169.254.169.254), CG-NAT and other reserved ranges are refused,
except hosts or networks listed in ``OUTBOUND_ALLOW`` and, outside
production, loopback (``scriptmesh dev`` delivers to local receivers;
``WEBHOOK_BLOCK_PRIVATE=true`` refuses loopback there too). The check is made
on the address actually connected to: requests-hardened's adapter resolves
the host once, checks that address and pins the connection to it (TLS still
verifies the name), so neither DNS rebinding nor URL-parser confusion
(``http://127.0.0.1:1\\@8.8.8.8/``) reaches an internal service. Redirects
are never followed (a 3xx is a failed delivery) and proxy variables are
ignored. Every attempt is recorded as a ``Delivery`` row; errors are reduced
to a short reason (a webhook URL is itself a secret).
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
from requests_hardened import Config as HardenedConfig
from requests_hardened import Manager
from requests_hardened.ip_filter import InvalidIPAddress

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


def outbound_allow() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """``OUTBOUND_ALLOW``: comma-separated host names and CIDR networks the hub may call
    even though they are private."""
    hosts: set[str] = set()
    networks = []
    for item in str(current_app.config.get("OUTBOUND_ALLOW") or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item)
    return hosts, networks


def loopback_allowed() -> bool:
    """Loopback is fine in development (local receivers), never in production."""
    config = current_app.config
    return config.get("SCRIPTMESH_ENV") != "production" and not config.get(
        "WEBHOOK_BLOCK_PRIVATE")


def is_allow_listed(host: str) -> bool:
    """True when ``host`` (a name or an IP literal) is in ``OUTBOUND_ALLOW``."""
    hosts, networks = outbound_allow()
    host = host.strip("[]").lower()
    if host in hosts:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The policy for one resolved address (see the module docstring)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return loopback_allowed()
    return address.is_global and not address.is_multicast


def check_target(url: str) -> None:
    """Refuse what the hub will not call: non-HTTP(S), ambiguous URLs, private addresses.

    This is the early check (a 422 when a URL is saved); :func:`send` checks
    again on the address it connects to.

    :raises BlockedTarget: with a reason that does not repeat the URL.
    """
    if not isinstance(url, str) or any(ch in url for ch in "\\\t\r\n ") or "\x00" in url:
        raise BlockedTarget("must be a URL without backslashes, spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget("must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise BlockedTarget("has an invalid port") from None
    if is_allow_listed(parts.hostname):
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return  # not resolvable now: the delivery checks the address it connects to
    for info in infos:
        if not address_allowed(ipaddress.ip_address(info[4][0].split("%")[0])):
            raise BlockedTarget(f"host {parts.hostname!r} resolves to a loopback, private or "
                                "reserved address; list it in OUTBOUND_ALLOW to allow it")


def session_for(url: str) -> requests.Session:
    """A session whose adapter checks and pins the connected address (no proxies)."""
    host = urlsplit(url).hostname or ""
    if is_allow_listed(host):
        session = requests.Session()
    else:
        session = Manager(HardenedConfig(
            ip_filter_enable=True, ip_filter_allow_loopback_ips=loopback_allowed(),
            never_redirect=True, default_timeout=None)).get_session()
    session.trust_env = False  # http_proxy & co. would bypass the pinned address
    return session


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
        with session_for(url) as session:
            response = session.request(
                method, url, data=body, headers={"User-Agent": USER_AGENT, **headers},
                timeout=float(current_app.config.get("WEBHOOK_TIMEOUT", 10)),
                allow_redirects=False,
            )
    except InvalidIPAddress:
        return Outcome(False, error="blocked: the host resolves to a loopback, private or "
                       "reserved address", duration_ms=_ms(started), retryable=False)
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
