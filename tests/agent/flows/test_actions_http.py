"""``http_request``, ``wait_for``, ``wait_until`` and ``delay`` against a real local HTTP app."""

from __future__ import annotations

import socket
import threading
import time


def one_step(step: dict, **flow_extra: object) -> dict:
    return {"flow": {"name": "t", "steps": [step], **flow_extra}}


def test_http_request_sends_method_headers_query_and_json(run_flow, app_server) -> None:
    result = run_flow(one_step({
        "id": "call", "action": "http_request",
        "config": {"method": "put", "url": f"{app_server.url}/echo",
                   "headers": {"X-Trace": "${trace}"}, "query": {"page": 2, "q": "a b"},
                   "json": {"n": "${n}", "list": [1, 2]}, "auth": {"bearer": "tok"}},
        "assert": ["status == 200", "body.method == 'PUT'", "body.query.page == '2'",
                   "body.query.q == 'a b'", "body.headers['x-trace'] == 'abc'",
                   "body.headers.authorization == 'Bearer tok'",
                   "body.json.n == 5",
                   "body.json.list[1] == 2", "headers['x-echo'] == 'yes'",
                   "duration_ms >= 0"],
    }, env={"trace": "abc", "n": 5}))
    assert result.ok, run_flow.events


def test_http_request_text_body_basic_auth_and_raw_body(run_flow, app_server) -> None:
    flow = {"flow": {"name": "t", "steps": [
        {"id": "text", "action": "http_request", "config": {"url": f"{app_server.url}/text"},
         "assert": ["body == 'plain hello'", "headers['content-type'] == 'text/plain'"]},
        {"id": "raw", "action": "http_request",
         "config": {"method": "POST", "url": f"{app_server.url}/echo", "body": "a=1&b=2",
                    "auth": {"username": "u", "password": "p"}},
         "assert": ["body.raw == 'a=1&b=2'",
                    "body.headers.authorization == 'Basic dTpw'"]},
        {"id": "missing", "action": "http_request", "config": {"url": f"{app_server.url}/nope"},
         "assert": ["status == 404", "body.error == 'not found'"]},
    ]}}
    assert run_flow(flow).ok, run_flow.events


def test_http_request_redirects_follow_or_not(run_flow, app_server) -> None:
    flow = {"flow": {"name": "t", "steps": [
        {"id": "follow", "action": "http_request", "config": {"url": f"{app_server.url}/redirect"},
         "assert": ["status == 200", "body.query.from == 'redirect'"]},
        {"id": "stay", "action": "http_request",
         "config": {"url": f"{app_server.url}/redirect", "follow_redirects": False},
         "assert": ["status == 302", "headers.location == '/echo?from=redirect'"]},
    ]}}
    assert run_flow(flow).ok, run_flow.events


def test_http_network_error_and_request_timeout(run_flow, app_server) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run_flow(one_step({"id": "down", "action": "http_request",
                       "config": {"url": f"http://user:pw@127.0.0.1:{port}/x?token=abc"}}))
    error = run_flow.final("down")["error"]
    assert error.startswith(f"GET http://127.0.0.1:{port}/x failed: ")
    assert "pw" not in error and "token" not in error

    started = time.monotonic()
    run_flow(one_step({"id": "slow", "action": "http_request",
                       "config": {"url": f"{app_server.url}/slow?s=2", "timeout": "200ms"}}))
    assert time.monotonic() - started < 1.5
    assert "failed" in run_flow.final("slow")["error"]


def test_wait_for_http_until_ready(run_flow, app_server) -> None:
    app_server.ready_after = 2
    result = run_flow(one_step({
        "id": "ready", "action": "wait_for",
        "config": {"type": "http", "url": f"{app_server.url}/ready", "interval": 0.05,
                   "timeout": 2}, "assert": ["attempts == 3", "status == 200"]}))
    assert result.ok, run_flow.events

    app_server.ready_after = 1000
    run_flow(one_step({"id": "never", "action": "wait_for",
                       "config": {"type": "http", "url": f"{app_server.url}/ready",
                                  "interval": 0.05, "timeout": 0.2}}))
    error = run_flow.final("never")["error"]
    assert error.startswith(f"wait_for {app_server.url}/ready: not ready within 0.2s after")
    assert error.endswith("(last: status 503)")


def test_wait_for_tcp_port_that_opens_later(run_flow) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def open_later() -> None:
        time.sleep(0.2)
        server.bind(("127.0.0.1", port))
        server.listen()

    threading.Thread(target=open_later).start()
    try:
        result = run_flow(one_step({
            "id": "port", "action": "wait_for",
            "config": {"type": "tcp", "host": "127.0.0.1", "port": port, "interval": 0.05,
                       "timeout": 3}, "assert": ["attempts > 1"]}))
    finally:
        time.sleep(0.25)
        server.close()
    assert result.ok, run_flow.events


def test_wait_until_reruns_its_steps_for_fresh_results(run_flow, app_server) -> None:
    result = run_flow(one_step({
        "id": "until", "action": "wait_until",
        "config": {"condition": "poll.body.calls >= 3", "interval": 0.03, "timeout": 2,
                   "steps": [{"id": "poll", "action": "http_request",
                              "config": {"url": f"{app_server.url}/flaky"}}]},
        "assert": ["attempts == 3"]}))
    assert result.ok, run_flow.events
    assert [e["id"] for e in run_flow.events if e["type"] == "step_completed"][:3] == \
        ["until.poll"] * 3

    run_flow(one_step({"id": "never", "action": "wait_until",
                       "config": {"condition": "flag == true", "interval": 0.05,
                                  "timeout": 0.15}}, env={"flag": False}))
    assert run_flow.final("never")["error"].startswith(
        "wait_until 'flag == true': not true within 0.15s")


def test_delay_sleeps_for_its_duration(run_flow) -> None:
    started = time.monotonic()
    assert run_flow(one_step({"id": "nap", "action": "delay",
                              "config": {"duration": "150ms"}})).ok
    assert 0.15 <= time.monotonic() - started < 0.6


def test_flow_allow_list_refuses_other_hosts(run_flow, app_server,
                                                                monkeypatch) -> None:
    """FLOW_ALLOW (optional): HTTP, database and Redis steps reach only listed targets."""
    monkeypatch.setenv("FLOW_ALLOW", "localhost")  # the app listens on 127.0.0.1 only
    url = app_server.url
    refused = run_flow(one_step({"id": "x", "action": "http_request", "config": {"url": url}}))
    assert not refused.ok
    assert "not in this agent's FLOW_ALLOW" in run_flow.final("x")["error"]
    for step in ({"action": "database_query", "config": {"dsn": "postgresql://db.internal/x",
                                                         "query": "select 1"}},
                 {"action": "redis.get", "config": {"url": "redis://10.9.9.9:6379/0",
                                                    "key": "k"}}):
        assert not run_flow(one_step({"id": "y", **step})).ok
        assert "FLOW_ALLOW" in run_flow.final("y")["error"]
    monkeypatch.setenv("FLOW_ALLOW", "127.0.0.0/8")
    assert run_flow(one_step({"id": "ok", "action": "http_request",
                              "config": {"url": f"{url}/echo"},
                              "assert": ["status == 200"]})).ok, run_flow.events
