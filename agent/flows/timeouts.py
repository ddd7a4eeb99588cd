"""Step deadlines: run a step's work in a thread and stop waiting for it when time is up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.flows.context import ActionContext
from agent.flows.errors import StepTimeout

#: After a deadline, how long to let a cancelled action wind down before moving on.
ABANDON_GRACE = 0.5


def call_with_deadline(call: Callable[[], Any], ctx: ActionContext, name: str) -> Any:
    """Return ``call()``, or raise :class:`StepTimeout` once ``ctx``'s deadline passes.

    Without a deadline the call runs inline. With one it runs in a daemon thread; at
    the deadline the step's cancel token is set (waits, loops and nested steps stop at
    their next check; network calls are bounded by the same deadline) and the step fails.
    """
    left = ctx.remaining()
    if left is None:
        return call()
    if left <= 0:
        raise StepTimeout(f"{ctx.run.timeout_label} exceeded")
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed over to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"flow-step-{name}", daemon=True)
    thread.start()
    thread.join(left)
    if thread.is_alive():
        ctx.run.cancel.cancel(f"{ctx.run.timeout_label} exceeded")
        thread.join(ABANDON_GRACE)
        raise StepTimeout(f"{ctx.run.timeout_label} exceeded")
    if "error" in box:
        raise box["error"]
    return box["value"]
