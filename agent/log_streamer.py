"""Stream a running job's output to the hub in offset-addressed chunks.

The streamer knows nothing about HTTP: it calls an ``upload`` callback with
``{"stdout": {"offset", "data"}, "stderr": {"offset", "data"}}`` and only moves
its offsets forward when the callback returns True, so a failed upload is
simply sent again (the hub ignores chunks it already has).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

DEFAULT_STREAM_INTERVAL = 1.0
MAX_CHUNK_CHARS = 256 * 1024

Chunk = dict[str, dict[str, object]]
ReadLive = Callable[[int], str]
Upload = Callable[[Chunk], bool]


class PeriodicUploader:
    """A background thread calling ``upload_pending`` every ``interval`` seconds.

    Subclasses say what to upload; ``stop(flush=True)`` makes one last attempt.
    """

    thread_name = "uploader"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def upload_pending(self) -> bool:
        raise NotImplementedError

    def start(self) -> PeriodicUploader:
        """Start the background upload loop."""
        self._thread.start()
        return self

    def stop(self, flush: bool = False) -> None:
        """Stop the loop; with ``flush`` make one last upload attempt of what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if flush:
            self.upload_pending()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.upload_pending()


class LogStreamer(PeriodicUploader):
    """Periodically upload new output of several named streams via ``upload``."""

    thread_name = "log-streamer"

    def __init__(
        self,
        sources: Mapping[str, ReadLive],
        upload: Upload,
        interval: float = DEFAULT_STREAM_INTERVAL,
    ) -> None:
        super().__init__(interval)
        self._sources = dict(sources)
        self._upload = upload
        self.offsets = dict.fromkeys(self._sources, 0)

    def upload_pending(self) -> bool:
        """Upload new output once; return True when there was nothing to send or it was accepted."""
        chunk = {
            name: {"offset": self.offsets[name], "data": read(self.offsets[name])[:MAX_CHUNK_CHARS]}
            for name, read in self._sources.items()
        }
        if not any(part["data"] for part in chunk.values()):
            return True
        try:
            accepted = self._upload(chunk)
        except Exception:  # noqa: BLE001 - a streaming hiccup must never kill the job
            log.exception("output upload failed")
            return False
        if accepted:
            for name, part in chunk.items():
                self.offsets[name] += len(str(part["data"]))
        return accepted
