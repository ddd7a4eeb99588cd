"""The lock fields a trigger, fan-out or schedule may give its jobs."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

NAME = validate.Length(1, 200)
DURATION_RE = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(fields.Field):
    """A duration: seconds, or ``"90s"``, ``"10m"``, ``"26h"``, ``"7d"``; loads as seconds
    (``"auto"`` is kept for the service to derive)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value == "auto":
            return value
        match = DURATION_RE.match(str(value)) if not isinstance(value, bool) else None
        if match is None or int(match.group(1)) == 0:
            raise ValidationError('Give a duration: seconds, or e.g. "10m", "26h", "7d".')
        return int(match.group(1)) * UNITS[match.group(2)]

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


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
