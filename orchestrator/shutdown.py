"""A stopping hub answers its long waits at once instead of letting them run out.

Requests that block for long (an agent's ``POST /agent/poll`` in BLPOP, a
synchronous trigger waiting for its job) mark themselves with
:func:`interruptible` while they block in Redis. On SIGTERM the gunicorn
worker (``gunicorn_conf.post_worker_init``) calls :func:`answer_waiters`,
which throws :class:`HubStopping` into each of those greenlets: the request
stops waiting and answers what it has (an empty poll). redis-py disconnects a
connection whose read was interrupted, so no half-read reply is ever reused.
A wait that begins after the stop raises at once.

Only greenlets are tracked (gevent workers); elsewhere nothing calls
:func:`answer_waiters` and the marks cost a set insertion.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator

from greenlet import getcurrent

log = logging.getLogger(__name__)


class HubStopping(BaseException):  # noqa: N818 - a signal, like GreenletExit, not an error
    """Thrown into a long wait: the hub is stopping, answer now."""


_waiting: weakref.WeakSet = weakref.WeakSet()
_stopping = False


def is_stopping() -> bool:
    return _stopping


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Mark the current greenlet as blocked in a long wait for the duration of the block.

    :raises HubStopping: the hub is stopping (now, or while waiting).
    """
    if _stopping:
        raise HubStopping
    current = getcurrent()
    _waiting.add(current)
    try:
        yield
    finally:
        _waiting.discard(current)


def answer_waiters() -> int:
    """Stop every marked wait (call from the gevent hub's side, not a signal handler)."""
    import gevent

    global _stopping
    _stopping = True
    waiters = list(_waiting)
    for waiter in waiters:
        if isinstance(waiter, gevent.Greenlet):
            waiter.kill(HubStopping, block=False)
        else:  # a raw greenlet: throw into it from the hub's loop
            gevent.get_hub().loop.run_callback(waiter.throw, HubStopping)
    if waiters:
        log.info("hub stopping: answered %d waiting request(s)", len(waiters))
    return len(waiters)
