"""Fixtures for flow tests: a real local HTTP app, a flow runner that records events, PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml

from agent.flows import FlowEngine, FlowResult, load_flow

SECRET_MARKER = "TOP-SECRET-BODY-7f3a9c"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


class LocalApp:
    """A tiny HTTP service on 127.0.0.1 whose behaviour tests can script and observe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, list[float]] = {}
        self.fail_first = 0
        self.ready_after = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                app.handle(self)

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.calls.get(path, []))

    def times(self, path: str) -> list[float]:
        with self.lock:
            return list(self.calls.get(path, []))

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        with self.lock:
            self.calls.setdefault(parts.path, []).append(time.monotonic())
            calls = len(self.calls[parts.path])
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        status, body, headers = self.route(request, parts, raw, calls)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def route(self, request: Any, parts: Any, raw: bytes, calls: int) -> tuple[int, Any, dict]:
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        if path == "/echo":
            body = {"method": request.command, "query": query, "raw": raw.decode(),
                    "headers": {k.lower(): v for k, v in request.headers.items()}}
            if "json" in (request.headers.get("Content-Type") or ""):
                body["json"] = json.loads(raw or b"null")
            return 200, body, {"X-Echo": "yes"}
        if path == "/login":
            payload = json.loads(raw or b"{}")
            ok = payload.get("password") == "pw"
            return (200, {"token": "tok-123", "user": {"id": 7, "roles": ["admin", "dev"]}}, {}) \
                if ok else (401, {"error": "bad credentials"}, {})
        if path == "/secret":
            return 200, {"id": 42, "data": SECRET_MARKER}, {"X-Secret": SECRET_MARKER}
        if path == "/flaky":
            return (500 if calls <= self.fail_first else 200), {"calls": calls}, {}
        if path == "/ready":
            return (503, {}, {}) if calls <= self.ready_after else (200, {"ready": True}, {})
        if path == "/text":
            return 200, b"plain hello", {"Content-Type": "text/plain"}
        if path == "/redirect":
            return 302, b"", {"Location": "/echo?from=redirect"}
        if path == "/slow":
            time.sleep(float(query.get("s", "1")))
            return 200, {"slow": True}, {}
        return 404, {"error": "not found"}, {}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_server() -> Iterator[LocalApp]:
    server = LocalApp()
    yield server
    server.stop()


class Recorder:
    """Runs flows with an engine whose events are recorded in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.logs: list[tuple[str, str, str]] = []

    def __call__(self, flow: Any, variables: dict[str, Any] | None = None,
                 **engine_options: Any) -> FlowResult:
        if isinstance(flow, str):
            flow = yaml.safe_load(flow)
        if not hasattr(flow, "steps"):
            flow = load_flow(flow)
        timeout = engine_options.pop("timeout", None)
        engine_options.setdefault("log_sink", lambda *entry: self.logs.append(entry))
        engine = FlowEngine(self.events.append, **engine_options)
        return engine.run(flow, variables, timeout=timeout)

    def of(self, step_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events
                if e.get("id") == step_id and (kind is None or e["type"] == kind)]

    def final(self, step_id: str) -> dict[str, Any]:
        """The last completed/failed/skipped event of ``step_id``."""
        done = [e for e in self.of(step_id) if e["type"] != "step_started"]
        assert done, f"no final event for {step_id}: {self.trace()}"
        return done[-1]

    def trace(self) -> list[tuple[str, str]]:
        return [(e["type"], e.get("id", e.get("flow"))) for e in self.events]


@pytest.fixture
def run_flow() -> Recorder:
    return Recorder()


@pytest.fixture
def write_flow(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def _pg_candidates() -> list[str]:
    url = os.environ.get("DATABASE_URL", "")
    found = [url.replace("+psycopg", "")] if url.startswith("postgresql") else []
    return [*found, DEFAULT_PG_DSN]


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A reachable PostgreSQL DSN (DATABASE_URL when it is PostgreSQL, else a local default)."""
    errors = []
    for dsn in _pg_candidates():
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return dsn
        except psycopg.Error as exc:
            errors.append(f"{dsn.split('@')[-1]}: {str(exc).splitlines()[0]}")
    pytest.skip(f"no reachable PostgreSQL for database_query tests ({'; '.join(errors)})")


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """A unique table name, dropped after the test whatever the flow did."""
    name = f"flow_test_{os.getpid()}_{time.monotonic_ns()}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
