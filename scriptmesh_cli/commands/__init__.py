"""The CLI's commands, a module per area; helpers every command shares live here."""

from __future__ import annotations

import click

from scriptmesh_cli.client import HubClient

TARGET_KEY = "scriptmesh.target"


def hub() -> HubClient:
    """A client for the hub and credential this invocation resolved."""
    return HubClient(click.get_current_context().meta[TARGET_KEY])


def key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """``("a=1", "b=x=y")`` -> ``{"a": "1", "b": "x=y"}``; a usage error for ``"a"``."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint=what)
        found[name] = value
    return found


def split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]
