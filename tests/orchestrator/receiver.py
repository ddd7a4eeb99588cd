"""A real local HTTP server that records what webhooks and integrations send it,
and a helper that runs the background queue's RQ jobs for real (a burst worker)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flask import Flask
from rq import SimpleWorker

from orchestrator.extensions import redis_store
from orchestrator.queues import background_queue
from orchestrator.services import outbox


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Answers each request with the next status of ``statuses`` (then 200), and records it."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(self.command, self.path,
                                                      dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = _handle  # noqa: N815 - http.server's naming

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

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
