"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Domain errors subclass both ``ScriptMeshError`` and the matching werkzeug
exception, as flask-smorest's own exceptions do, so one handler renders them,
werkzeug's built-in errors (404, 405, ...) and unhandled exceptions alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, Response, jsonify
from werkzeug import exceptions as http

log = logging.getLogger(__name__)


class ScriptMeshError(http.HTTPException):
    """Base of every error the API raises on purpose."""

    #: Subclasses repeat their status: this class precedes werkzeug's in their MRO.
    code = 400
    error_code = "bad_request"

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(description=message or self.description)
        self.details = details or {}
        if error_code:
            self.error_code = error_code


class BadRequest(ScriptMeshError, http.BadRequest):
    code = 400
    error_code = "bad_request"


class Unauthorized(ScriptMeshError, http.Unauthorized):
    code = 401
    error_code = "unauthorized"


class TokenExpired(Unauthorized):
    error_code = "token_expired"


class Forbidden(ScriptMeshError, http.Forbidden):
    code = 403
    error_code = "forbidden"


class NotFound(ScriptMeshError, http.NotFound):
    code = 404
    error_code = "not_found"


class Conflict(ScriptMeshError, http.Conflict):
    code = 409
    error_code = "conflict"


class ValidationFailed(ScriptMeshError, http.UnprocessableEntity):
    code = 422
    error_code = "validation_error"


class RateLimited(ScriptMeshError, http.TooManyRequests):
    code = 429
    error_code = "rate_limited"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render_http_exception(exc: http.HTTPException) -> Response:
    """Render any werkzeug/flask-smorest/domain HTTP error in the one shape."""
    status = exc.code or 500
    details: dict[str, Any] = {}
    if isinstance(exc, ScriptMeshError):
        code, details = exc.error_code, exc.details
    else:
        code = _snake(type(exc).__name__)
        data = getattr(exc, "data", None) or {}
        if status == 422 and "messages" in data:
            # webargs validation: {"json": {"field": ["msg"]}} -> {"field": ["msg"]}
            messages = data["messages"]
            details = {"fields": _flatten_locations(messages)}
            code = "validation_error"
        if status == 400 and "messages" in data:
            details = {"fields": _flatten_locations(data["messages"])}
        if status == 429:
            code = "rate_limited"
    message = exc.description or http.HTTP_STATUS_CODES.get(status, "Error")
    if status == 422 and not isinstance(exc, ScriptMeshError):
        message = _validation_message(getattr(exc, "data", None) or {})
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for name, value in (exc.get_headers() if hasattr(exc, "get_headers") else []):
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _validation_message(data: dict[str, Any]) -> str:
    """Say where the invalid input is and where the per-field reasons are."""
    messages = data.get("messages") or {}
    where = "query string" if set(messages) == {"query"} else "request body"
    fields = _flatten_locations(messages) if messages else {}
    whole = fields.get("_schema") if isinstance(fields, dict) else None
    if whole and isinstance(whole, list) and len(fields) == 1:
        return f"The {where} is not valid: {whole[0]}"
    names = ", ".join(sorted(fields)) if isinstance(fields, dict) else ""
    return (f"The {where} is not valid: fix {names} (see details.fields)." if names
            else f"The {where} is not valid (see details.fields).")


def _flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    if len(messages) == 1 and next(iter(messages)) in ("json", "query", "form", "headers"):
        return next(iter(messages.values()))
    return messages


def render_unhandled(exc: Exception) -> Response:
    """A bug: log it with its traceback, answer 500 in the one shape."""
    if isinstance(exc, http.HTTPException):
        return render_http_exception(exc)
    log.exception("unhandled error: %s", type(exc).__name__)
    response = jsonify(error_body("internal_error", "An internal error occurred."))
    response.status_code = 500
    return response


def render_backend_unavailable(exc: Exception) -> Response:
    """Redis or the database out of reach (a failover, a restart): 503, retry later."""
    log.warning("backend unavailable: %s", type(exc).__name__)
    response = jsonify(error_body("service_unavailable",
                                  "A backing service (Redis or the database) is briefly "
                                  "unavailable; retry in a few seconds."))
    response.status_code = 503
    response.headers["Retry-After"] = "2"
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(http.HTTPException, render_http_exception)
    for unavailable in (redis.ConnectionError, redis.TimeoutError, sa.exc.TimeoutError,
                        sa.exc.DisconnectionError):
        app.register_error_handler(unavailable, render_backend_unavailable)
    app.register_error_handler(Exception, render_unhandled)
