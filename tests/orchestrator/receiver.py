"""A local HTTP server (``tests.api_stubs.LocalServer``) that records what webhooks and
integrations send it, and a helper that runs the background work for real (a burst worker
and the outbox relay)."""

from __future__ import annotations

from flask import Flask
from rq import SimpleWorker

from orchestrator.extensions import redis_store
from orchestrator.queues import background_queue
from orchestrator.services import outbox
from tests.api_stubs import Call, LocalServer

#: One recorded request (method, path, headers, body; ``.json``).
Received = Call


class Receiver(LocalServer):
    """Answers each request with the next status of ``statuses`` (then 200), and records it."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.statuses = list(statuses)

    @property
    def requests(self) -> list[Call]:
        return self.calls

    def respond(self, call: Call) -> tuple[int, bytes, str]:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
        return status, b"ok", "text/plain"

    def __enter__(self) -> Receiver:
        super().__enter__()
        return self

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def run_background_jobs(app: Flask) -> int:
    """Do what ``scriptmesh worker`` and the scheduler's outbox relay would, in this process,
    until nothing is due (webhooks, notifications, retries without delay); return how many
    RQ jobs ran."""
    with app.app_context():
        queue = background_queue()
        worker = SimpleWorker([queue], connection=redis_store.connection)
        ran = 0
        while True:
            while queue.count:
                before = queue.count
                worker.work(burst=True, logging_level="WARNING")
                ran += before
            if not outbox.relay_due():
                return ran
