"""RQ tasks: background work run by ``scriptmesh worker`` inside an app context.

Every task is a plain function decorated with ``@task``; it runs inside an
application context built by the same ``create_app`` as the web process (one
app per worker process, made on first use).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, has_app_context

F = TypeVar("F", bound=Callable[..., Any])

_worker_app: Flask | None = None


def worker_app() -> Flask:
    """This process's app for running tasks (created once)."""
    global _worker_app
    if _worker_app is None:
        from orchestrator import create_app

        _worker_app = create_app()
    return _worker_app


def task(fn: F) -> F:
    """Run ``fn`` inside an app context (reusing the caller's, e.g. in tests)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return fn(*args, **kwargs)
        with worker_app().app_context():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
