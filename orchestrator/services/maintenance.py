"""Periodic upkeep run by the one active scheduler: leases, offline agents, lost queues.

``run_maintenance`` is idempotent and safe to call from any process; the
scheduler calls it every few seconds under its Redis leader lock.
"""

from __future__ import annotations


def run_maintenance() -> dict[str, int]:
    """Do one round of upkeep; return counts of what changed (for logs and tests)."""
    return {}
