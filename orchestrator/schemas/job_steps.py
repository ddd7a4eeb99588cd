"""Schemas for flow steps: the events agents upload (``agent/protocol.py``) and ``steps`` of a job.

Both stay self-contained (no import of the other schema modules), so ``jobs`` and
``agents`` schemas can both nest them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import EXCLUDE, Schema, fields, validate

#: The most events one upload may carry (the agent's MAX_EVENTS_PER_UPLOAD).
MAX_EVENTS_PER_UPLOAD = 500
EVENT_TYPES = ("step_started", "step_completed", "step_failed", "step_skipped",
               "flow_completed", "flow_failed", "flow_warning")
STEP_STATUSES = ("running", "passed", "failed", "skipped")


def iso_z(moment: datetime | None) -> str | None:
    """``2026-03-10T14:32:11.123Z`` (naive means UTC), or None."""
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: PostgreSQL ``integer`` columns hold at most this.
INT32_MAX = 2**31 - 1


class StepEventSchema(Schema):
    """One event as the flow engine emits it (``agent/flows/events.py``); flow-level
    fields other than ``type`` and ``seq`` are ignored."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    seq = fields.Integer(required=True, validate=validate.Range(1, INT32_MAX))
    id = fields.String(validate=validate.Length(1, 500))
    name = fields.String(allow_none=True, validate=validate.Length(max=500))
    action = fields.String(validate=validate.Length(1, 64))
    status = fields.String(validate=validate.OneOf(STEP_STATUSES))
    started_at = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    duration_ms = fields.Integer(allow_none=True, validate=validate.Range(0, INT32_MAX))
    attempts = fields.Integer(allow_none=True, validate=validate.Range(0, INT32_MAX))
    assertions = fields.List(fields.Dict(), load_default=list,
                             validate=validate.Length(max=1000))
    error = fields.String(allow_none=True, validate=validate.Length(max=100_000))
    outputs = fields.Dict(keys=fields.String(validate=validate.Length(max=500)),
                          values=fields.Raw(allow_none=True), load_default=dict)
    reason = fields.String(allow_none=True, validate=validate.Length(max=10_000))


class EventsSchema(Schema):
    """``POST /agent/jobs/<job_id>/events``."""

    class Meta:
        unknown = EXCLUDE

    agent_name = fields.String(required=True, validate=validate.Length(1, 128))
    events = fields.List(fields.Nested(StepEventSchema), required=True,
                         validate=validate.Length(max=MAX_EVENTS_PER_UPLOAD))


class EventsResultSchema(Schema):
    cancel = fields.Boolean()


class AssertionOutcomeSchema(Schema):
    expression = fields.String()
    passed = fields.Boolean()
    actual = fields.Raw(metadata={"description": "Only when the step sets report_values."})
    error = fields.String()


class JobStepSchema(Schema):
    """One step of a flow job, as far as its agent has reported it."""

    id = fields.String(attribute="step_id", metadata={"example": "login"})
    parent = fields.String(allow_none=True, metadata={
        "description": "The enclosing step of a nested step (condition, for_each, "
                       "parallel, run_flow)."})
    name = fields.String(allow_none=True)
    action = fields.String(metadata={"example": "http_request"})
    status = fields.String(metadata={"enum": list(STEP_STATUSES)})
    started_at = fields.Function(lambda step: iso_z(step.started_at), allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    attempts = fields.Integer(allow_none=True)
    assertions = fields.List(fields.Nested(AssertionOutcomeSchema))
    error = fields.String(allow_none=True)
    outputs = fields.Dict(metadata={"description": "The values named in the step's `output:`."})
    reason = fields.String(allow_none=True)

