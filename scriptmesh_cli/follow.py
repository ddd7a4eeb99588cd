"""Follow a job's live output (``GET /jobs/{id}/logs?follow=true``), resuming after drops.

The hub's event ids are resume cursors: a dropped connection (or a Ctrl-C the
caller handled) reconnects with ``Last-Event-ID`` and gets exactly the bytes
not seen yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scriptmesh_cli.client import HubClient, HubError

#: Read timeout of the stream: longer than the hub's 15 s keepalive.
READ_TIMEOUT = 45.0
#: Give up when the hub has been unreachable this long.
DEFAULT_RECONNECT_FOR = 60.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)


@dataclass
class Event:
    event: str
    data: Any
    id: str | None = None


def parse_events(chunks: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events from text chunks (comments and unknown fields skipped)."""
    buffer, fields = "", {}
    for chunk in chunks:
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            line = line.rstrip("\r")
            if not line:
                if "data" in fields:
                    yield Event(fields.get("event", "message"), json.loads(fields["data"]),
                                fields.get("id"))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value


@dataclass
class Follower:
    """One job's stream; ``cursor`` is the last event id seen (resume point)."""

    client: HubClient
    job_id: str
    cursor: str | None = None
    reconnect_for: float = DEFAULT_RECONNECT_FOR
    end: dict[str, Any] | None = None
    reconnects: int = 0
    _failing_since: float | None = field(default=None, repr=False)

    def events(self) -> Iterator[Event]:
        """Every event until ``end`` (kept in ``self.end``), reconnecting after drops."""
        import requests

        while self.end is None:
            headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
            try:
                response = self.client.send(
                    "GET", f"/jobs/{self.job_id}/logs", params={"follow": "true"},
                    headers=headers, stream=True, timeout=(10, READ_TIMEOUT))
                self._failing_since = None
                with response:
                    for event in parse_events(
                            response.iter_content(chunk_size=None, decode_unicode=True)):
                        if event.id:
                            self.cursor = event.id
                        if event.event == "end":
                            self.end = event.data
                        yield event
            except HubError as exc:
                if exc.status is not None:  # the hub answered: an error, not a drop
                    raise
                self._wait_to_reconnect(exc)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                self._wait_to_reconnect(exc)
            if self.end is None:
                self.reconnects += 1

    def _wait_to_reconnect(self, exc: Exception) -> None:
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        if now - self._failing_since > self.reconnect_for:
            if isinstance(exc, HubError):
                raise exc
            raise HubError(f"Lost the connection to {self.client.url}: {exc}") from None
        time.sleep(RECONNECT_DELAYS[min(self.reconnects, len(RECONNECT_DELAYS) - 1)])


def print_output(event: Event, out: Callable[[str], None], err: Callable[[str], None]) -> None:
    """Write an ``output`` event's text to the matching stream."""
    if event.event == "output":
        (err if event.data.get("stream") == "stderr" else out)(event.data.get("data", ""))
