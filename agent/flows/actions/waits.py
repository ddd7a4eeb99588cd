"""Waiting steps: ``wait_for`` (HTTP or TCP), ``wait_until`` (an expression), ``delay``."""

from __future__ import annotations

import socket
import time
from typing import Any

import requests

from agent.flows.actions.http import describe_error, redact_url
from agent.flows.context import ActionContext, ActionSpec
from agent.flows.durations import parse_duration
from agent.flows.errors import ExpressionError, StepFailed
from agent.flows.expressions import evaluate

DEFAULT_WAIT_INTERVAL = 1.0
DEFAULT_WAIT_TIMEOUT = 30.0
MAX_PROBE_TIMEOUT = 5.0
DURATION = {"type": ["number", "string"]}

WAIT_FOR_SCHEMA = {
    "required": ["type"],
    "properties": {"type": {"enum": ["http", "tcp"]}, "url": {"type": "string"},
                   "host": {"type": "string"}, "port": {"type": ["integer", "string"]},
                   "interval": DURATION, "timeout": DURATION,
                   "expect_status": {"type": ["integer", "array", "string"]}},
    "if": {"properties": {"type": {"const": "http"}}},
    "then": {"required": ["url"]},
    "else": {"required": ["host", "port"]},
}
WAIT_UNTIL_SCHEMA = {
    "required": ["condition"],
    "properties": {"condition": {"type": "string"}, "steps": {"$ref": "#/$defs/steps"},
                   "interval": DURATION, "timeout": DURATION},
}
DELAY_SCHEMA = {"required": ["duration"], "properties": {"duration": DURATION}}


def _timing(config: dict[str, Any]) -> tuple[float, float]:
    interval = parse_duration(config.get("interval", DEFAULT_WAIT_INTERVAL), "config.interval")
    timeout = parse_duration(config.get("timeout", DEFAULT_WAIT_TIMEOUT), "config.timeout")
    return interval, timeout


def _probe(config: dict[str, Any], timeout: float) -> tuple[bool, str, int | None]:
    """One try: (ready, reason when not, HTTP status)."""
    if config["type"] == "tcp":
        try:
            with socket.create_connection((str(config["host"]), int(config["port"])), timeout):
                return True, "", None
        except OSError as exc:
            return False, exc.strerror or type(exc).__name__, None
    try:
        response = requests.get(str(config["url"]), timeout=timeout)
    except requests.RequestException as exc:
        return False, describe_error(exc), None
    expected = config.get("expect_status")
    if expected is None:
        ready = response.status_code < 400
    else:
        ready = response.status_code in (expected if isinstance(expected, list) else [expected])
    return ready, f"status {response.status_code}", response.status_code


def wait_for(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Probe every ``interval`` until the endpoint answers, failing after ``timeout``.

    HTTP is ready on a status below 400 (or one of ``expect_status``); TCP once it connects.
    """
    interval, timeout = _timing(config)
    target = (redact_url(str(config["url"])) if config["type"] == "http"
              else f"{config['host']}:{config['port']}")
    started, attempts = time.monotonic(), 0
    while True:
        attempts += 1
        left = timeout - (time.monotonic() - started)
        ready, reason, status = _probe(config, max(min(MAX_PROBE_TIMEOUT, left), 0.05))
        elapsed = time.monotonic() - started
        if ready:
            return {"attempts": attempts, "duration_ms": int(elapsed * 1000), "status": status}
        if elapsed + interval > timeout:
            raise StepFailed(f"wait_for {target}: not ready within {timeout:g}s after "
                             f"{attempts} attempts (last: {reason})")
        ctx.sleep(interval)


def wait_until(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Re-run ``steps`` (if any) and re-evaluate ``condition`` until it holds or time is up.

    A failing nested step or an expression that cannot be evaluated yet means "not yet".
    """
    interval, timeout = _timing(config)
    condition = str(config["condition"])
    started, attempts, last = time.monotonic(), 0, "condition false"
    while True:
        attempts += 1
        failure = ctx.run_steps(config.get("steps") or [], f"{ctx.step_id}.")
        if failure:
            last = f"step failed: {failure}"
        else:
            try:
                if evaluate(condition, ctx.names()):
                    elapsed = int((time.monotonic() - started) * 1000)
                    return {"attempts": attempts, "duration_ms": elapsed}
                last = "condition false"
            except ExpressionError as exc:
                last = str(exc)
        if time.monotonic() - started + interval > timeout:
            raise StepFailed(f"wait_until {condition!r}: not true within {timeout:g}s after "
                             f"{attempts} attempts (last: {last})")
        ctx.sleep(interval)


def delay(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Sleep ``duration`` (cut short, and failed, by cancellation or the deadline)."""
    seconds = parse_duration(config["duration"], "config.duration")
    started = time.monotonic()
    ctx.sleep(seconds)
    return {"duration_ms": int((time.monotonic() - started) * 1000)}


ACTIONS = {
    "wait_for": ActionSpec(
        wait_for, config_schema=WAIT_FOR_SCHEMA, result_keys=("attempts", "duration_ms", "status"),
        example={"type": "http", "url": "${BASE_URL}/health", "expect_status": 200,
                 "interval": "500ms", "timeout": "30s"}),
    "wait_until": ActionSpec(
        wait_until, frozenset({"condition", "steps"}), WAIT_UNTIL_SCHEMA, ("condition",),
        result_keys=("attempts", "duration_ms"),
        example={"condition": "poll.body.state == 'ready'", "interval": "1s", "timeout": "1m",
                 "steps": [{"id": "poll", "action": "http_request",
                            "config": {"url": "${BASE_URL}/state"}}]}),
    "delay": ActionSpec(delay, config_schema=DELAY_SCHEMA, result_keys=("duration_ms",),
                        example={"duration": "500ms"}),
}
