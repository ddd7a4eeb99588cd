"""Is the client of this request still there? A non-blocking peek at its socket (gunicorn)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any


def hung_up(environ: Mapping[str, Any]) -> bool:
    """True when the request's client has closed its connection (or reset it).

    Peeks one byte without blocking on gunicorn's ``gunicorn.socket``: end of
    file or an error means gone; no data yet (or a pipelined request) means
    still there. Off gunicorn (tests' client) the answer is always False.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    raw = getattr(sock, "_sock", sock)  # gevent's wrapper would wait instead of failing
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def hang_up_check(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """:func:`hung_up` bound to ``environ``, for a service that must not see the request."""
    return lambda: hung_up(environ)
