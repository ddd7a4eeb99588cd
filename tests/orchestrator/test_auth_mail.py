"""Verification mail through each transport: dev outbox, SMTP and Resend's HTTP API.

SMTP and Resend are exercised against tiny real servers on localhost (a
minimal SMTP dialogue on ``socketserver``, an ``http.server`` standing in for
Resend), so the bytes on the wire are the ones production would send.
"""

from __future__ import annotations

import base64
import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

PASSWORD = "a long enough password"
EMAIL = "alice@acme.example"


@pytest.fixture
def caplog(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, with our loggers back on: Alembic's ``fileConfig`` (the session's migration)
    disables every logger that existed before it ran."""
    names = ("orchestrator.services.mail", "orchestrator.services.accounts")
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = False
    yield caplog
    for logger, disabled in zip(loggers, before, strict=True):
        logger.disabled = disabled


def register(client: FlaskClient) -> Any:
    response = client.post("/auth/register", json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return response


# -- dev outbox --------------------------------------------------------------------------

def test_outbox_keeps_an_eml_and_logs_the_code_in_development(
        client: FlaskClient, app: Flask, mailed_code: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orchestrator.services.mail"):
        register(client)
    files = list((Path(app.config["DATA_DIR"]) / "outbox").glob("*.eml"))
    assert len(files) == 1 and files[0].name[:8].isdigit()
    message = message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert message["To"] == EMAIL and "verification code" in message["Subject"]
    code = mailed_code(EMAIL)
    assert len(code) == 6
    outbox_lines = [r.getMessage() for r in caplog.records if "outbox" in r.getMessage()]
    assert len(outbox_lines) == 1 and code in outbox_lines[0]
    assert PASSWORD not in caplog.text


def test_outbox_log_has_no_code_in_production(client: FlaskClient, app: Flask,
                                              mailed_code: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    app.config["SCRIPTMESH_ENV"] = "production"
    with caplog.at_level(logging.INFO):
        register(client)
    code = mailed_code(EMAIL)  # still in the .eml file
    assert "outbox" in caplog.text
    assert code not in caplog.text


# -- SMTP --------------------------------------------------------------------------------

class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) for smtplib."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        received: dict[str, Any] = {"rcpt": []}
        self.reply("220 test-smtp ready")
        while line := self.rfile.readline().decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test-smtp")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(line.split()[2]).split(b"\0")
                received["auth"] = (user.decode(), password.decode())
                self.reply("235 ok")
            elif verb == "MAIL":
                received["from"] = line
                self.reply("250 ok")
            elif verb == "RCPT":
                received["rcpt"].append(line)
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go ahead")
                received["data"] = self._read_data()
                self.server.messages.append(received)  # type: ignore[attr-defined]
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_transport_delivers_the_code(client: FlaskClient, app: Flask,
                                          smtp_server: Any) -> None:
    port = smtp_server.server_address[1]
    app.config["MAIL_SMTP_URL"] = f"smtp://mailer%40acme:s3cret%21@127.0.0.1:{port}"
    register(client)
    [received] = smtp_server.messages
    assert received["auth"] == ("mailer@acme", "s3cret!")
    assert EMAIL in received["rcpt"][0]
    message = message_from_bytes(received["data"], policy=default_policy)
    assert message["To"] == EMAIL
    assert "verification code is" in message.get_content()
    assert not (Path(app.config["DATA_DIR"]) / "outbox").exists()


def test_smtp_failure_does_not_fail_sign_up(client: FlaskClient, app: Flask,
                                            caplog: pytest.LogCaptureFixture) -> None:
    app.config["MAIL_SMTP_URL"] = "smtp://user:hunter2-password@127.0.0.1:1"
    register(client)  # the user can ask for another code once mail works
    assert "not sent" in caplog.text and "hunter2-password" not in caplog.text
    assert client.post("/auth/resend-code", json={"email": EMAIL}).status_code == 202


# -- Resend ------------------------------------------------------------------------------

@pytest.fixture
def resend_server() -> Iterator[HTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.server.requests.append(  # type: ignore[attr-defined]
                {"path": self.path, "auth": self.headers["Authorization"],
                 "json": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id": "re_123"}')

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_resend_transport_posts_the_mail(client: FlaskClient, app: Flask,
                                         resend_server: HTTPServer) -> None:
    port = resend_server.server_address[1]
    app.config["RESEND_API_KEY"] = "re_test_key"
    app.config["RESEND_API_URL"] = f"http://127.0.0.1:{port}/emails"
    register(client)
    [sent] = resend_server.requests  # type: ignore[attr-defined]
    assert sent["path"] == "/emails"
    assert sent["auth"] == "Bearer re_test_key"
    assert sent["json"]["to"] == [EMAIL]
    assert sent["json"]["from"] == app.config["MAIL_FROM"]
    assert "verification code is" in sent["json"]["text"]
