"""Schemas for fleet operations: job locks, agent pause/drain, fan-out control, the audit log."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from orchestrator.schemas.jobs import UTCDateTime


class AgentPauseSchema(Schema):
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    until = UTCDateTime(allow_none=True, metadata={
        "description": "The pause ends by itself at this instant (ISO 8601)."})


class FanoutRerunSchema(Schema):
    only = fields.List(fields.String(validate=validate.OneOf(
        ["failed", "not_started", "cancelled", "timeout", "lost"])),
        load_default=lambda: ["failed", "not_started"], validate=validate.Length(1, 5),
        metadata={"description": "Which targets to run again: failed (failed, timeout, "
                                 "expired, lost), not_started, cancelled."})


class AuditQueryArgsSchema(Schema):
    action = fields.String()
    actor = fields.String()
    subject = fields.String()
    since = UTCDateTime()
    until = UTCDateTime()
    cursor = fields.String(validate=validate.Regexp(r"^\d{1,18}$"))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class AuditEntrySchema(Schema):
    id = fields.Integer()
    actor = fields.String(allow_none=True)
    actor_kind = fields.String()
    action = fields.String(metadata={"example": "fanout.approve"})
    subject = fields.String(allow_none=True)
    details = fields.Dict()
    ip = fields.String(allow_none=True)
    created_at = UTCDateTime()


class AuditPageSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema))
    next_cursor = fields.String(allow_none=True)
