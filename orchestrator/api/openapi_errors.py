"""The error side of the OpenAPI document: the one error shape, and which statuses occur where."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields

#: Public endpoints with a request budget (AUTH_RATE_LIMIT / AUTH_IP_RATE_LIMIT).
RATE_LIMITED_PREFIX = "/auth/"
WRITE_METHODS = ("post", "put", "patch", "delete")


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True, metadata={
        "example": "The request body is not valid: see details.fields."})
    details = fields.Dict(required=True, metadata={
        "example": {"fields": {"agent": ["Missing data for required field."]}}})


class ErrorEnvelopeSchema(Schema):
    """Every error: ``{"error": {"code", "message", "details"}}`` (``orchestrator/errors.py``)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> dict[str, str]:
    """The error statuses an operation can answer, as {status: component response name}."""
    statuses = {}
    if operation.get("security"):
        statuses.update({"401": "UNAUTHORIZED", "403": "FORBIDDEN"})
    if "{" in path:
        statuses["404"] = "NOT_FOUND"
    if "requestBody" in operation:
        statuses.update({"400": "BAD_REQUEST", "413": "REQUEST_ENTITY_TOO_LARGE",
                         "422": "UNPROCESSABLE_ENTITY"})
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        statuses["422"] = "UNPROCESSABLE_ENTITY"
    if method in WRITE_METHODS:
        statuses["409"] = "CONFLICT"
    if path.startswith(RATE_LIMITED_PREFIX):
        statuses["429"] = "TOO_MANY_REQUESTS"
    return statuses


def document_error_responses(spec: APISpec) -> None:
    """Add the error responses each operation can give (all in the one error shape)."""
    for path, operations in spec._paths.items():  # noqa: SLF001 - apispec has no public walk
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, name in error_statuses(path, method, operation).items():
                if status not in responses:
                    responses[status] = spec.components.get_ref("response", name)
