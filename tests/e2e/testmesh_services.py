"""A stdlib HTTP stub of the services TestMesh's seed flows call, plus their database tables.

One server plays the user, order, payment and notification services. Every body also
carries ``MARKER`` in fields no flow names as an output: it must never reach the hub.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import psycopg

MARKER = "TM-SECRET-5d1e88"
ORDER_ID = "ord-1001"
ITEMS = [{"id": 7, "name": "seven"}, {"id": 9, "name": "nine"}]


def _answer(method: str, path: str) -> tuple[int, Any]:
    """The stub's routes: (status, JSON body)."""
    fixed: dict[tuple[str, str], tuple[int, Any]] = {
        ("POST", "/api/users"): (201, {"id": "user-042", "email": "alice@example.com",
                                       "password_hash": MARKER}),
        ("GET", "/api/users"): (200, {"total": 2, "users": [{"id": "user-001", "ssn": MARKER}]}),
        ("GET", "/api/search"): (200, {"results": [{"id": "user-001", "ssn": MARKER}]}),
        ("POST", "/api/login"): (200, {"token": "tok-abc", "user_id": "user-001",
                                       "refresh": MARKER}),
        ("POST", "/api/orders"): (201, {"id": ORDER_ID, "card": MARKER}),
        ("POST", "/api/payments"): (200, {"id": "pay-77", "status": "succeeded", "pan": MARKER}),
        ("POST", "/api/refunds"): (200, {"id": "ref-1", "pan": MARKER}),
        ("POST", "/api/notifications/email"): (202, {"message_id": "mail-1", "raw": MARKER}),
        ("POST", "/api/notifications/sms"): (202, {"message_id": "sms-1", "raw": MARKER}),
        ("GET", "/api/health"): (200, {"status": "ok"}),
        ("GET", "/users/1"): (200, {"id": 1, "name": "Leanne", "email": MARKER}),
        ("GET", "/posts"): (200, [{"id": 1, "body": MARKER}]),
        ("GET", "/api/items"): (200, {"data": {"items": ITEMS, "total": 2}, "raw": MARKER}),
        ("GET", "/api/v1/mock-servers"): (200, {"servers": [{"id": 1, "token": MARKER}]}),
    }
    if (method, path) in fixed:
        return fixed[(method, path)]
    if method == "GET" and (match := re.fullmatch(r"/api/(users|payments|items)/([\w-]+)", path)):
        kind, key = match.groups()
        if kind == "items":
            return 200, {"id": int(key), "raw": MARKER}
        return 200, {"id": key, "status": "succeeded", "ssn": MARKER}
    return 404, {"error": "no route"}


class _Handler(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = _answer(self.command, urlsplit(self.path).path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _reply  # noqa: N815

    def log_message(self, *args: Any) -> None:
        """Quiet."""


class StubServices:
    """Start with :meth:`start`, stop with :meth:`stop` (the test owns it)."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StubServices:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SQLITE_SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, active BOOLEAN);
CREATE TABLE orders (external_id TEXT);
INSERT INTO users VALUES ('user-001', 'alice@example.com', 1), ('user-002', 'bob@example.com', 0);
INSERT INTO orders VALUES ('ord-1001');
"""
PG_SCHEMA = """
DROP SCHEMA IF EXISTS testmesh CASCADE; DROP SCHEMA IF EXISTS mocks CASCADE;
CREATE SCHEMA testmesh; CREATE SCHEMA mocks;
CREATE TABLE testmesh.users (id TEXT PRIMARY KEY, email TEXT, active BOOLEAN);
CREATE TABLE testmesh.orders (external_id TEXT);
CREATE TABLE testmesh.payment_audit (payment_id TEXT PRIMARY KEY, amount NUMERIC,
                                     recorded_at TIMESTAMPTZ);
CREATE TABLE testmesh.notification_log (order_id TEXT PRIMARY KEY, email_id TEXT, sms_id TEXT,
                                        sent_at TIMESTAMPTZ);
CREATE TABLE mocks.mock_servers (id SERIAL PRIMARY KEY, status TEXT);
CREATE TABLE mocks.mock_requests (mock_server_id INT, path TEXT, method TEXT, matched BOOLEAN,
                                  received_at TIMESTAMPTZ DEFAULT NOW());
INSERT INTO mocks.mock_requests (mock_server_id, path, method, matched)
    VALUES (1, '/a', 'GET', true), (1, '/b', 'GET', false);
INSERT INTO testmesh.users VALUES ('user-001', 'alice@example.com', true),
                                  ('user-002', 'bob@example.com', false);
INSERT INTO testmesh.orders VALUES ('ord-1001');
INSERT INTO mocks.mock_servers (status) VALUES ('running'), ('stopped');
"""


def make_sqlite(path: str) -> str:
    """Create the tables in a SQLite file; return its ``sqlite:///`` URL."""
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_SCHEMA)
    conn.close()
    return f"sqlite:///{path}"


def make_postgres(dsn: str) -> str:
    """(Re)create the tables in schema ``testmesh``; return a URL whose search_path is it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PG_SCHEMA)
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options=-csearch_path%3Dtestmesh"


def drop_postgres(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS testmesh CASCADE; DROP SCHEMA IF EXISTS mocks CASCADE")
