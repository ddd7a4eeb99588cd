"""Local liveness/readiness endpoint for Docker and Kubernetes probes (the hub never calls it)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


class HealthServer:
    """Serve ``/healthz`` (process alive) and ``/readyz`` (registered and taking jobs)."""

    def __init__(self, port: int, is_ready: Callable[[], bool], host: str = "0.0.0.0") -> None:
        self.is_ready = is_ready
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0 in tests)."""
        return self._server.server_address[1]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.split("?")[0] == "/healthz":
                    self._answer(200, {"status": "ok"})
                elif self.path.split("?")[0] == "/readyz":
                    ready = server.is_ready()
                    self._answer(200 if ready else 503, {"ready": ready})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # probes hit this every few seconds; keep the agent log readable

        return Handler

    def start(self) -> HealthServer:
        """Serve in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and release the port."""
        self._server.shutdown()
        self._server.server_close()
