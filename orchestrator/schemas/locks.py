"""The lock fields a trigger, fan-out or schedule may give its jobs."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

NAME = validate.Length(1, 200)


class LockFieldsSchema(Schema):
    """``lock`` and ``concurrency_group``/``concurrency_limit`` of the job(s) created."""

    lock = fields.String(allow_none=True, validate=NAME, metadata={
        "description": "At most one job holding this lock runs on one agent at a time; "
                       "the others wait their turn (queued, not refused). Default: the "
                       "manifest entry's `lock`.", "example": "pkg"})
    concurrency_group = fields.String(allow_none=True, validate=NAME, metadata={
        "description": "With concurrency_limit: at most N jobs of this group run at once "
                       "across the whole fleet."})
    concurrency_limit = fields.Integer(allow_none=True, validate=validate.Range(1, 100000))

    @validates_schema
    def limit_with_group(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("concurrency_group")) != bool(data.get("concurrency_limit")):
            raise ValidationError("Give concurrency_group and concurrency_limit together.",
                                  "concurrency_limit")
