"""``http_request``: call an HTTP(S) endpoint; the response stays on the agent."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from agent.flows import targets
from agent.flows.context import ActionContext, ActionSpec
from agent.flows.durations import parse_duration
from agent.flows.errors import StepFailed

DEFAULT_HTTP_TIMEOUT = 30.0
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")]+")

CONFIG_SCHEMA = {
    "required": ["url"],
    "properties": {
        "method": {"type": "string"},
        "url": {"type": "string", "minLength": 1},
        "headers": {"type": ["object", "string"]},
        "query": {"type": ["object", "string"]},
        "auth": {"type": ["object", "string"]},
        "follow_redirects": {"type": ["boolean", "string"]},
        "verify_tls": {"type": ["boolean", "string"]},
        "body": {},
        "json": {},
        "timeout": {"type": ["number", "string"]},
    },
}


def redact_url(url: str) -> str:
    """Drop credentials and the query string: what an error message may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe_error(exc: Exception) -> str:
    """A short reason for a network error: the OS error when there is one, else its type."""
    match = _ERRNO_RE.search(str(exc))
    return match.group(0) if match else type(exc).__name__


def parse_body(response: requests.Response) -> Any:
    """JSON for JSON content types (None when empty), text otherwise."""
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


def _auth(config: dict[str, Any], headers: dict[str, str]) -> tuple[str, str] | None:
    auth = config.get("auth")
    if not isinstance(auth, dict):
        return None
    if "bearer" in auth:
        headers["Authorization"] = f"Bearer {auth['bearer']}"
        return None
    return str(auth.get("username", "")), str(auth.get("password", ""))


def request_options(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Translate the step config into ``requests.request`` keyword arguments."""
    timeout = parse_duration(config.get("timeout", DEFAULT_HTTP_TIMEOUT), "config.timeout")
    left = ctx.remaining()
    if left is not None:
        timeout = max(min(timeout, left), 0.001)
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    options: dict[str, Any] = {
        "headers": headers,
        "params": config.get("query") or None,
        "timeout": timeout,
        "allow_redirects": bool(config.get("follow_redirects", True)),
        "verify": bool(config.get("verify_tls", True)),
        "auth": _auth(config, headers),
    }
    if "json" in config:
        options["json"] = config["json"]
    elif "body" in config:
        body = config["body"]
        options["data" if isinstance(body, str | bytes) else "json"] = body
    return options


def http_request(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Send the request; the result is ``status, headers, body, duration_ms, url``.

    Any status is a result (assert on it); only a network error fails the step.
    Header names are lower-cased.
    """
    method = str(config.get("method", "GET")).upper()
    url = str(config["url"])
    targets.check_url(url, "http_request")
    options = request_options(config, ctx)
    options["hooks"] = {"response": _check_redirect}
    started = time.monotonic()
    try:
        response = requests.request(method, url, **options)
    except requests.RequestException as exc:
        raise StepFailed(f"{method} {redact_url(url)} failed: {describe_error(exc)}") from None
    return {
        "status": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": parse_body(response),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "url": response.url,
    }


def _check_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Every redirect hop must be allowed too (``FLOW_ALLOW``)."""
    if response.is_redirect:
        targets.check_url(urljoin(response.url, response.headers.get("location", "")),
                          "http_request redirect")


ACTIONS = {"http_request": ActionSpec(
    http_request, config_schema=CONFIG_SCHEMA,
    result_keys=("status", "headers", "body", "duration_ms", "url"),
    example={"method": "POST", "url": "${BASE_URL}/api/users",
             "headers": {"Content-Type": "application/json"},
             "body": {"name": "Alice"}, "timeout": "10s"})}
