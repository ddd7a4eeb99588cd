"""Background work that must start only once the current transaction has committed.

``enqueue_after_commit`` parks an RQ task on the session; when the session
commits, every parked task goes to the background queue, and a rollback
drops them. So a webhook is never sent for a job row that was rolled back,
and never from the request path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from orchestrator.extensions import db

log = logging.getLogger(__name__)

PENDING_KEY = "scriptmesh.after_commit"


def enqueue_after_commit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Enqueue ``func(*args, **kwargs)`` on the background queue after the next commit."""
    park(db.session(), func, *args, **kwargs)


def park(session: Session, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``enqueue_after_commit`` for a given session (inside session event hooks)."""
    session.info.setdefault(PENDING_KEY, []).append((func, args, kwargs))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    from orchestrator.queues import background_queue

    queue = background_queue()
    for func, args, kwargs in pending:
        try:
            queue.enqueue(func, *args, **kwargs)
        except redis.RedisError as exc:  # the commit stands; only this side effect is lost
            log.warning("could not enqueue %s after commit: %s", func.__name__,
                        type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
