"""Stream a running flow's events to the hub in ``seq``-ordered batches.

Like :mod:`agent.log_streamer`, the streamer knows nothing about HTTP: it calls
an ``upload`` callback with a list of events and only drops them from its
buffer when the callback returns True, so a failed batch is simply sent again
(the hub skips events whose ``seq`` it already applied).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from agent.log_streamer import DEFAULT_STREAM_INTERVAL, PeriodicUploader
from agent.protocol import MAX_EVENTS_PER_UPLOAD

log = logging.getLogger(__name__)


Event = dict[str, Any]
UploadEvents = Callable[[list[Event]], bool]


class EventStreamer(PeriodicUploader):
    """Buffer events as the engine emits them and upload them every ``interval`` seconds."""

    thread_name = "event-streamer"

    def __init__(
        self,
        upload: UploadEvents,
        interval: float = DEFAULT_STREAM_INTERVAL,
        batch_size: int = MAX_EVENTS_PER_UPLOAD,
    ) -> None:
        super().__init__(interval)
        self._upload = upload
        self._batch_size = batch_size
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one upload at a time keeps batches in seq order

    def add(self, event: Event) -> None:
        """Queue one event (called from the engine's threads, already in ``seq`` order)."""
        with self._lock:
            self._pending.append(event)

    def pending(self) -> list[Event]:
        """The events the hub has not acknowledged yet, oldest first."""
        with self._lock:
            return list(self._pending)

    def upload_pending(self) -> bool:
        """Upload every queued event in batches; True when all were accepted (or none queued)."""
        with self._sending:
            while True:
                batch = self.pending()[: self._batch_size]
                if not batch:
                    return True
                try:
                    accepted = self._upload(batch)
                except Exception:  # noqa: BLE001 - a streaming hiccup must never kill the flow
                    log.exception("event upload failed")
                    return False
                if not accepted:
                    return False
                with self._lock:
                    del self._pending[: len(batch)]
