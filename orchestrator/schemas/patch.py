"""A PATCH body must change something: an empty one is a 422, not a silent no-op."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, validates_schema


class NonEmptyPatchSchema(Schema):
    """Base of PATCH bodies: at least one known field."""

    @validates_schema
    def require_a_change(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            names = ", ".join(sorted(self.fields))
            raise ValidationError(f"Give at least one field to change ({names}).", "_schema")
