"""The engine: event order, retries with backoff, timeouts, teardown, when, on_error, assertions."""

from __future__ import annotations

import json
import time

from tests.agent.flows.conftest import SECRET_MARKER


def delay_step(step_id: str, seconds: float = 0, **extra: object) -> dict:
    return {"id": step_id, "action": "delay", "config": {"duration": seconds}, **extra}


def failing_step(step_id: str, **extra: object) -> dict:
    return {"id": step_id, "action": "assert", "config": {"expressions": ["1 == 2"]}, **extra}


def flow(steps: list, setup: list | None = None, teardown: list | None = None, **extra) -> dict:
    body = {"name": "t", "steps": steps, **extra}
    if setup is not None:
        body["setup"] = setup
    if teardown is not None:
        body["teardown"] = teardown
    return {"flow": body}


def test_events_are_emitted_in_order_with_the_documented_fields(run_flow, app_server) -> None:
    result = run_flow(flow(
        setup=[delay_step("prepare")],
        steps=[
            {"id": "login", "action": "http_request",
             "config": {"method": "POST", "url": f"{app_server.url}/login",
                        "json": {"user": "u", "password": "pw"}},
             "assert": ["status == 200"], "output": {"token": "body.token"}},
            delay_step("skipped_one", when="token == 'other'"),
        ],
        teardown=[delay_step("cleanup")],
    ))
    assert result.ok and result.outputs == {"token": "tok-123"}
    assert run_flow.trace() == [
        ("step_started", "prepare"), ("step_completed", "prepare"),
        ("step_started", "login"), ("step_completed", "login"),
        ("step_skipped", "skipped_one"),
        ("step_started", "cleanup"), ("step_completed", "cleanup"),
        ("flow_completed", "t"),
    ]
    assert [e["seq"] for e in run_flow.events] == list(range(1, 9))
    done = run_flow.final("login")
    assert set(done) == {"type", "seq", "id", "name", "action", "status", "started_at",
                         "duration_ms", "attempts", "assertions", "error", "outputs"}
    assert done["status"] == "passed" and done["attempts"] == 1 and done["error"] is None
    assert done["assertions"] == [{"expression": "status == 200", "passed": True}]
    assert done["outputs"] == {"token": "tok-123"}
    assert run_flow.final("skipped_one")["status"] == "skipped"
    final = run_flow.events[-1]
    assert final["steps"] == {"passed": 3, "failed": 0, "skipped": 1}
    assert final["status"] == "passed" and final["error"] is None
    json.dumps(run_flow.events)  # every event is JSON-safe


def test_retries_with_fixed_and_exponential_backoff(run_flow, app_server) -> None:
    app_server.fail_first = 3

    def gaps() -> list[float]:
        times = app_server.times("/flaky")
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    step = {"id": "flaky", "action": "http_request", "config": {"url": f"{app_server.url}/flaky"},
            "assert": ["status == 200"],
            "retry": {"max_attempts": 4, "delay": 0.05, "backoff": "exponential"}}
    assert run_flow(flow([step])).ok
    assert run_flow.final("flaky")["attempts"] == 4
    for gap, expected in zip(gaps(), [0.05, 0.1, 0.2], strict=True):
        assert expected * 0.9 <= gap < expected + 0.1, gaps()

    app_server.calls.clear()
    step["retry"] = {"max_attempts": 3, "delay": 0.08, "backoff": "fixed"}
    result = run_flow(flow([step]))
    assert not result.ok and app_server.count("/flaky") == 3
    assert all(0.072 <= gap < 0.18 for gap in gaps()), gaps()
    failed = run_flow.final("flaky")
    assert failed["attempts"] == 3 and failed["error"] == "assertion failed: status == 200"


def test_step_timeout_and_flow_timeout(run_flow) -> None:
    started = time.monotonic()
    result = run_flow(flow([delay_step("slow", 5, timeout=0.2), delay_step("after")]))
    assert time.monotonic() - started < 1.5
    assert run_flow.final("slow")["error"] == "step timeout (0.2s) exceeded"
    assert [e["type"] for e in run_flow.of("after")] == ["step_skipped"]
    assert "step slow: step timeout (0.2s) exceeded" in result.error

    started = time.monotonic()
    result = run_flow(flow([delay_step("a", 0.1), delay_step("b", 5)], timeout=0.3))
    assert time.monotonic() - started < 1.5
    assert run_flow.final("a")["status"] == "passed"
    assert run_flow.final("b")["error"] == "flow timeout (0.3s) exceeded"
    assert result.status == "failed"


def test_engine_timeout_argument_bounds_the_flow(run_flow) -> None:
    result = run_flow(flow([delay_step("long", 5)]), timeout=0.2)
    assert result.error == "step long: flow timeout (0.2s) exceeded"


def test_teardown_runs_after_a_failed_step(run_flow) -> None:
    result = run_flow(flow(
        setup=[delay_step("s")],
        steps=[failing_step("boom"), delay_step("never")],
        teardown=[delay_step("td1"), failing_step("td_fail"), delay_step("td2")],
    ))
    trace = run_flow.trace()
    assert ("step_started", "never") not in trace
    assert [i for t, i in trace if t == "step_started"] == ["s", "boom", "td1", "td_fail", "td2"]
    # the teardown failure is reported but does not hide the main failure
    assert result.error.startswith("step boom: assertion failed: 1 == 2; teardown also failed:")
    assert run_flow.events[-1]["type"] == "flow_failed"


def test_teardown_runs_after_a_failed_setup_and_can_fail_alone(run_flow) -> None:
    result = run_flow(flow(setup=[failing_step("bad_setup")], steps=[delay_step("main")],
                           teardown=[delay_step("td")]))
    assert result.error == "setup failed: step bad_setup: assertion failed: 1 == 2"
    assert run_flow.final("main")["reason"] == "not run: setup failed"
    assert run_flow.final("td")["status"] == "passed"

    result = run_flow(flow(steps=[delay_step("main")], teardown=[failing_step("td")]))
    assert result.error == "teardown failed: step td: assertion failed: 1 == 2"


def test_teardown_runs_after_a_flow_timeout(run_flow) -> None:
    result = run_flow(flow([delay_step("slow", 5)], teardown=[delay_step("td", 0.05)],
                           timeout=0.2))
    assert run_flow.final("td")["status"] == "passed"
    assert "flow timeout (0.2s) exceeded" in result.error


def test_when_and_on_error(run_flow) -> None:
    result = run_flow(flow([
        delay_step("literal_false", when=False),
        delay_step("runs", when="mode == 'full' && len(items) == 2"),
        failing_step("tolerated", on_error="continue"),
        delay_step("still_runs"),
        delay_step("broken_when", when="undefined_name > 1"),
        delay_step("not_reached"),
    ], env={"mode": "full", "items": [1, 2]}))
    assert run_flow.final("literal_false")["type"] == "step_skipped"
    assert run_flow.final("runs")["status"] == "passed"
    assert run_flow.final("tolerated")["status"] == "failed"
    assert run_flow.final("still_runs")["status"] == "passed"
    broken = run_flow.final("broken_when")
    assert broken["type"] == "step_failed"
    assert broken["error"] == "when 'undefined_name > 1': unknown name 'undefined_name'"
    not_reached = run_flow.of("not_reached")  # counted as skipped, never started
    assert [e["type"] for e in not_reached] == ["step_skipped"]
    assert not_reached[0]["reason"] == "not run: step broken_when failed"
    assert result.error.startswith("step broken_when: when")


def test_assertion_messages_with_and_without_values(run_flow, app_server) -> None:
    step = {"id": "check", "action": "http_request", "config": {"url": f"{app_server.url}/echo"},
            "assert": ["status == 200", "status == 201 && headers['x-echo'] == 'no'",
                       "body.nothing.deeper == 1"]}
    run_flow(flow([step]))
    event = run_flow.final("check")
    assert event["error"] == ("assertion failed: status == 201 && headers['x-echo'] == 'no'; "
                              "assertion failed: body.nothing.deeper == 1 "
                              "(cannot read 'deeper' of nil)")
    assert [a["passed"] for a in event["assertions"]] == [True, False, False]
    assert all("actual" not in a for a in event["assertions"])

    run_flow.events.clear()
    run_flow(flow([{**step, "id": "verbose", "report_values": True}]))
    event = run_flow.final("verbose")
    assert event["assertions"][1] == {
        "expression": "status == 201 && headers['x-echo'] == 'no'", "passed": False,
        "actual": {"status": 200}}
    assert "assertion failed: status == 201 && headers['x-echo'] == 'no' (actual: status = 200)" \
        in event["error"]


def test_no_raw_data_leaves_in_events(run_flow, app_server, redis_url) -> None:
    """Bodies, headers, rows and Redis values stay on the agent; only named outputs leave."""
    definition = flow([
        {"id": "fetch", "action": "http_request", "config": {"url": f"{app_server.url}/secret"},
         "assert": ["len(body.data) > 10", "headers['x-secret'] != nil", "body.data == 'guess'"],
         "output": {"record_id": "body.id"}, "on_error": "continue"},
        {"id": "store", "action": "redis.set",
         "config": {"url": redis_url, "key": "flow:secret", "value": "${fetch.body.data}"}},
        {"id": "load", "action": "redis.get", "config": {"url": redis_url, "key": "flow:secret"},
         "assert": ["value startsWith 'TOP'"]},
        {"id": "shape", "action": "transform", "config": {"value": "${fetch.body}"}},
        {"id": "cleanup", "action": "redis.del",
         "config": {"url": redis_url, "key": "flow:secret"}},
    ])
    result = run_flow(definition)
    emitted = json.dumps(run_flow.events)
    assert run_flow.final("fetch")["outputs"] == {"record_id": 42}
    assert run_flow.final("load")["status"] == "passed"
    assert result.outputs == {"record_id": 42}
    assert SECRET_MARKER not in emitted

    # the same flow opting in to report_values does show it: the check above can fail
    run_flow.events.clear()
    definition["flow"]["steps"][0]["report_values"] = True
    run_flow(definition)
    assert SECRET_MARKER in json.dumps(run_flow.events)


def test_a_failing_emit_callback_does_not_stop_the_run() -> None:
    from agent.flows import FlowEngine, load_flow

    seen = []

    def emit(event: dict) -> None:
        seen.append(event["type"])
        raise RuntimeError("hub unreachable")

    result = FlowEngine(emit).run(load_flow(flow([delay_step("a"), delay_step("b")])))
    assert result.ok and seen[-1] == "flow_completed" and len(seen) == 5


def test_cancel_token_stops_the_run(run_flow) -> None:
    import threading

    from agent.flows import FlowEngine, load_flow
    from agent.flows.context import CancelToken

    token = CancelToken()
    threading.Timer(0.1, token.cancel, args=("requested by the hub",)).start()
    engine = FlowEngine(run_flow.events.append)
    started = time.monotonic()
    result = engine.run(load_flow(flow([delay_step("wait", 5)], teardown=[delay_step("td")])),
                        cancel=token)
    assert time.monotonic() - started < 1.0
    assert result.error == "step wait: cancelled: requested by the hub"
    assert run_flow.final("td")["status"] == "passed"
