"""Outbound policy: the address connected to is checked; private ranges need OUTBOUND_ALLOW."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from flask import Flask

from orchestrator.services import outbound
from tests.orchestrator.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def send(app: Flask, url: str, **config: Any) -> outbound.Outcome:
    saved = {key: app.config.get(key) for key in config}
    app.config.update(config)
    try:
        with app.app_context():
            return outbound.send("POST", url, b"{}", {"Content-Type": "application/json"})
    finally:
        app.config.update(saved)


def test_backslash_userinfo_confusion_never_reaches_loopback(app: Flask,
                                                             receiver: Receiver) -> None:
    port = receiver.server.server_address[1]
    outcome = send(app, f"http://127.0.0.1:{port}\\@8.8.8.8/x", WEBHOOK_BLOCK_PRIVATE=True)
    assert not outcome.success and outcome.error.startswith("blocked")
    assert receiver.requests == []


def test_the_connected_address_is_checked_not_the_name(app: Flask, receiver: Receiver) -> None:
    """``localhost`` passes a name check; the resolved loopback address does not."""
    port = receiver.server.server_address[1]
    with app.app_context():
        app.config["WEBHOOK_BLOCK_PRIVATE"] = True
        try:
            session = outbound.session_for(f"http://localhost:{port}/x")
            with pytest.raises(outbound.InvalidIPAddress):
                session.post(f"http://localhost:{port}/x", timeout=5)
        finally:
            app.config["WEBHOOK_BLOCK_PRIVATE"] = False
    assert receiver.requests == []


def test_production_denies_loopback_by_default_and_allow_list_opens_it(
        app: Flask, receiver: Receiver) -> None:
    denied = send(app, receiver.url + "/hook", SCRIPTMESH_ENV="production")
    assert not denied.success and denied.error.startswith("blocked") and not denied.retryable
    assert receiver.requests == []
    allowed = send(app, receiver.url + "/hook", SCRIPTMESH_ENV="production",
                   OUTBOUND_ALLOW="10.0.0.0/8, 127.0.0.1")
    assert allowed.success and receiver.paths() == ["/hook"]


def test_development_allows_loopback(app: Flask, receiver: Receiver) -> None:
    assert send(app, receiver.url + "/dev").success


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://10.1.2.3/x", "http://[::ffff:10.0.0.1]/x",
                                 "http://0.0.0.0:1/x", "http://100.64.0.1/x"])
def test_private_and_metadata_addresses_are_blocked_even_in_development(
        app: Flask, url: str) -> None:
    with app.app_context(), pytest.raises(outbound.BlockedTarget, match="OUTBOUND_ALLOW"):
        outbound.check_target(url)
    outcome = send(app, url)
    assert not outcome.success and outcome.error.startswith("blocked")


def test_redirects_are_not_followed(app: Flask, receiver: Receiver) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(302)
            self.send_header("Location", receiver.url + "/internal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        outcome = send(app, f"http://127.0.0.1:{server.server_address[1]}/start")
    finally:
        server.shutdown()
        server.server_close()
    assert not outcome.success and outcome.status_code == 302
    assert receiver.requests == []
