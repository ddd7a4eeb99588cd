"""EventStreamer: batches in seq order, keeps what was not accepted, uploads on its own."""

from __future__ import annotations

import threading
from typing import Any

from agent.event_streamer import EventStreamer


def events(first: int, last: int) -> list[dict[str, Any]]:
    return [{"type": "step_started", "seq": n, "id": f"s{n}"} for n in range(first, last + 1)]


def test_batches_in_order_and_keeps_refused_batches() -> None:
    sent: list[list[int]] = []
    accept = [True, False, True, True]

    def upload(batch: list[dict[str, Any]]) -> bool:
        sent.append([e["seq"] for e in batch])
        return accept.pop(0)

    streamer = EventStreamer(upload, interval=60, batch_size=2)
    for event in events(1, 5):
        streamer.add(event)
    assert streamer.upload_pending() is False  # the second batch was refused
    assert [e["seq"] for e in streamer.pending()] == [3, 4, 5]
    assert streamer.upload_pending() is True
    assert sent == [[1, 2], [3, 4], [3, 4], [5]]
    assert streamer.pending() == []


def test_a_raising_upload_keeps_the_events() -> None:
    def upload(batch: list[dict[str, Any]]) -> bool:
        raise OSError("network down")

    streamer = EventStreamer(upload, interval=60)
    streamer.add(events(1, 1)[0])
    assert streamer.upload_pending() is False
    assert len(streamer.pending()) == 1


def test_background_loop_uploads_within_the_interval_and_flushes_on_stop() -> None:
    got = threading.Event()
    sent: list[int] = []

    def upload(batch: list[dict[str, Any]]) -> bool:
        sent.extend(e["seq"] for e in batch)
        got.set()
        return True

    streamer = EventStreamer(upload, interval=0.05).start()
    streamer.add(events(1, 1)[0])
    assert got.wait(2), "the loop uploads without being asked"
    streamer.stop()
    streamer.add(events(2, 2)[0])
    streamer.stop(flush=True)
    assert sent == [1, 2]
