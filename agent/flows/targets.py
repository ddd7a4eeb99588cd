"""The agent's optional allow-list for what flow steps may reach (``FLOW_ALLOW``).

Flows exist to reach internal services, so by default any host is allowed.
An agent whose flows take variables from people it does not fully trust can
set ``FLOW_ALLOW`` to comma-separated host names, ``*.suffix`` wildcards and
CIDR networks: HTTP requests (every redirect hop too), database and Redis
steps then refuse other targets. A CIDR entry matches a host whose every
resolved address is inside it; names are matched as written.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from agent.flows.errors import StepFailed

ENV_VAR = "FLOW_ALLOW"


def allow_list(raw: str | None = None) -> list[str]:
    raw = os.environ.get(ENV_VAR, "") if raw is None else raw
    return [item.strip().lower() for item in raw.split(",") if item.strip()]


def _networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return networks


def host_allowed(host: str, entries: list[str]) -> bool:
    """True when ``host`` matches a name, a ``*.suffix`` or (all its addresses) a network."""
    host = host.strip("[]").lower()
    for entry in entries:
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    networks = _networks(entries)
    if not networks:
        return False
    try:
        addresses = {info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(
        any(ipaddress.ip_address(a) in net for net in networks) for a in addresses)


def check_url(url: str, what: str) -> None:
    """Raise :class:`StepFailed` when ``FLOW_ALLOW`` is set and ``url``'s host is not in it."""
    entries = allow_list()
    if not entries:
        return
    host = urlsplit(url).hostname or ""
    if not host_allowed(host, entries):
        raise StepFailed(f"{what}: host {host!r} is not in this agent's FLOW_ALLOW")


def check_dsn_host(host: str | None, what: str) -> None:
    """Like :func:`check_url` for a database connection's host (a socket path counts as
    the local machine)."""
    entries = allow_list()
    if not entries:
        return
    name = host or "localhost"
    if name.startswith("/"):
        name = "localhost"
    if not host_allowed(name, entries):
        raise StepFailed(f"{what}: host {name!r} is not in this agent's FLOW_ALLOW")
