"""The events a flow run emits, in order, to the ``emit(event)`` callback.

Each event is a JSON-safe dict with ``type`` and a per-run ``seq`` (1, 2, ...):

* ``step_started`` {id, name, action, status: "running", started_at}
* ``step_completed`` | ``step_failed`` {id, name, action, status: "passed"|"failed",
  started_at, duration_ms, attempts, assertions: [{expression, passed, actual?, error?}],
  error, outputs}
* ``step_skipped`` {id, name, action, status: "skipped", started_at, duration_ms: 0, reason}
  (a skipped step has no ``step_started``)
* ``flow_completed`` | ``flow_failed`` {flow, status: "passed"|"failed", started_at,
  duration_ms, error, outputs, steps: {passed, failed, skipped}}

Nested steps have qualified ids (``check.then_step``, ``loop[2].inner``, ``sub.step``).
No raw data leaves through events: only the values named in ``output:``, assertion
outcomes (``actual`` only with ``report_values``), durations and error messages.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: ``emit(event)``: receives every step and flow event as a JSON-safe dict.
Emit = Callable[[dict[str, Any]], None]

STEP_DONE = ("step_completed", "step_failed", "step_skipped")


def plain(value: Any) -> Any:
    """Return a JSON-safe copy of ``value`` (unknown types become strings)."""
    return json.loads(json.dumps(value, default=str))


class Emitter:
    """Numbers events and delivers them one at a time, in order; a failing callback is logged.

    Delivery happens under a lock, so events from parallel branches never interleave
    out of ``seq`` order.
    """

    def __init__(self, callback: Emit | None) -> None:
        self.callback = callback
        self.lock = threading.Lock()
        self.seq = 0
        self.counts: Counter[str] = Counter()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.seq += 1
            event = {"type": event["type"], "seq": self.seq, **event}
            if event["type"] in STEP_DONE:
                self.counts[event["status"]] += 1
            if self.callback is not None:
                try:
                    self.callback(event)
                except Exception:  # the run must go on even if reporting breaks
                    log.exception("flow event callback failed for %s", event["type"])

    def summary(self) -> dict[str, int]:
        """How many steps passed, failed and were skipped so far."""
        return {status: self.counts[status] for status in ("passed", "failed", "skipped")}
