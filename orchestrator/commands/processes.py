"""``scriptmesh dev``, ``worker`` and ``scheduler``: the hub's long-running processes."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``scriptmesh`` group."""
