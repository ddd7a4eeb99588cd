"""``scriptmesh users create`` and ``scriptmesh api-keys create``: bootstrap without mail."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``scriptmesh`` group."""
