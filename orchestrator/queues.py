"""RQ queue names and handles. Background work goes to ``BACKGROUND_QUEUE``.

Agent work queues (one per agent, and per pool tag) are defined by
``orchestrator.services.dispatch``; they carry jobs to agents' long-polls and
are never consumed by ``rq worker``.
"""

from __future__ import annotations

from rq import Queue

from orchestrator.extensions import redis_store

BACKGROUND_QUEUE = "scriptmesh-background"


def background_queue() -> Queue:
    """The queue ``scriptmesh worker`` consumes (webhooks, notifications, ...)."""
    return Queue(BACKGROUND_QUEUE, connection=redis_store.connection)
