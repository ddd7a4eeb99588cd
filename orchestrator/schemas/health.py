"""Schemas for /health."""

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    version = fields.String()
    database = fields.String(metadata={"example": "ok"})
    redis = fields.String(metadata={"example": "ok"})
