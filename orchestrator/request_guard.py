"""The request-parsing guard: size caps, authentication before parsing, and strict JSON.

Every request body passes here before any view, schema or rate-limit key sees
it: the body is capped (``MAX_CONTENT_LENGTH``, ``MAX_SMALL_BODY`` for the
endpoints whose bodies are small), an endpoint that needs a credential checks
it first (401/403 before 422), and JSON is parsed by one strict provider that
refuses what the database or a JSON consumer cannot hold: nesting deeper than
``MAX_JSON_DEPTH``, integers outside int64, ``NaN``/``Infinity``, and lone
UTF-16 surrogates. Each refusal is a 400/413 in the one error shape.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Flask, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from orchestrator.errors import BadRequest, ScriptMeshError

MAX_JSON_DEPTH = 64
INT64 = 2**63
#: Endpoints (by URL prefix) whose bodies are small: MAX_SMALL_BODY applies.
#: (Triggers, schedules and fan-outs carry params and variables, registrations and
#: heartbeats the manifest: those keep MAX_CONTENT_LENGTH.)
SMALL_BODY_PREFIXES = ("/auth/", "/integrations", "/admin/", "/settings/", "/agent/poll",
                       "/jobs/")
#: ...except these, which carry job output.
LARGE_BODY_SUFFIXES = ("/output", "/result", "/events")


class PayloadTooLarge(ScriptMeshError):
    code = 413
    error_code = "payload_too_large"


class InvalidJSON(BadRequest):
    error_code = "invalid_json"


def _reject_constant(name: str) -> Any:
    raise InvalidJSON(f"JSON {name} is not a number: send a finite number or null.")


def _parse_int(text: str) -> int:
    if len(text) > 20 or not -INT64 <= (value := int(text)) < INT64:
        raise InvalidJSON("An integer in the body is out of range: integers must fit "
                          "in 64 bits (-2^63 .. 2^63-1).")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON("A number in the body is too large: send a finite number.")
    return value


def check_depth_and_text(value: Any) -> None:
    """Walk ``value`` without recursion: bounded depth, strings encodable as UTF-8."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJSON(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON("A string in the body holds a lone UTF-16 surrogate (\\ud800-\\udfff); "
                          "send valid Unicode text.") from None


def _depth_prescan(data: str | bytes) -> None:
    """Refuse absurd nesting before the recursive C parser sees it (cheap byte count)."""
    opens = data.count("[" if isinstance(data, str) else b"[") + data.count(
        "{" if isinstance(data, str) else b"{")
    if opens <= MAX_JSON_DEPTH:
        return
    depth = 0
    in_string = escaped = False
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJSON(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} "
                                  "levels.")
        elif char in "]}":
            depth -= 1


def strict_loads(data: str | bytes) -> Any:
    """``json.loads`` refusing what ScriptMesh cannot store or answer (see the module doc)."""
    _depth_prescan(data)
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_int=_parse_int,
                           parse_float=_parse_float)
    except InvalidJSON:
        raise
    except RecursionError:
        raise InvalidJSON(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.") \
            from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"The body is not valid JSON ({exc}); send a JSON object with "
                          "Content-Type: application/json.") from None
    check_depth_and_text(value)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with :func:`strict_loads`, and answers that never hold NaN."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)


def body_limit(path: str) -> int:
    """The body cap for ``path``: small for sign-in and settings, larger for job output."""
    config = current_app.config
    if path.endswith(LARGE_BODY_SUFFIXES) or not path.startswith(SMALL_BODY_PREFIXES):
        return int(config["MAX_CONTENT_LENGTH"])
    return min(int(config["MAX_SMALL_BODY"]), int(config["MAX_CONTENT_LENGTH"]))


def required_scopes(app: Flask) -> tuple | None:
    """The scopes the matched view method declares with ``require_scope`` (None: public)."""
    view = app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    method = getattr(view_class, request.method.lower(), None) if view_class else view
    return getattr(method, "required_scopes", None)


def guard_request() -> None:
    """``before_request``: cap the body, then authenticate before anything parses it."""
    limit = body_limit(request.path)
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes; send less "
                              "(job output is capped by the agent).",
                              details={"limit": limit})
    needed = required_scopes(current_app)
    if needed is not None and "principal" not in g:
        from orchestrator.security import check_scopes

        check_scopes(needed)


def init_request_guard(app: Flask) -> None:
    """Install the strict JSON provider and run :func:`guard_request` first of all hooks
    (before the rate limiter's, whose account key reads the body).

    With ``TRUSTED_PROXIES=N`` the client address (rate limits) and scheme come from
    the ``X-Forwarded-For`` / ``-Proto`` the last N proxies set (werkzeug's ProxyFix);
    without it those headers are ignored, so a client cannot spoof its address.
    """
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore
    app.json = StrictJSONProvider(app)
    app.before_request_funcs.setdefault(None, []).insert(0, guard_request)
