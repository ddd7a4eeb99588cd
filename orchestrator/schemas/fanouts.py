"""Schemas for /fanouts: the request, the created answer, the report and the list."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orchestrator.models import FanoutStatus, JobStatus
from orchestrator.schemas.jobs import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    UTCDateTime,
    check_runnable,
    validate_params,
    validate_variables,
)
from orchestrator.schemas.targets import TargetFieldsSchema, is_fanout


class FanoutCreateSchema(TargetFieldsSchema):
    run_script = fields.String(validate=validate.Length(1, 255),
                               metadata={"example": "deploy.sh",
                                         "description": "The script to run (or give run_flow)."})
    run_flow = fields.String(validate=validate.Length(1, 255), metadata={
        "description": "A flow every target's manifest lists, run instead of a script."})
    variables = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                            validate=validate_variables,
                            metadata={"description": "run_flow only: the flow's variables."})
    params = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                         load_default=dict, validate=validate_params,
                         metadata={"example": {"version": "v2.4.1"}})
    timeout = fields.Integer(load_default=DEFAULT_TIMEOUT, validate=validate.Range(1, MAX_TIMEOUT))
    webhook_url = fields.Url(schemes={"http", "https"}, allow_none=True,
                             validate=validate.Length(max=2000),
                             metadata={"description": "Called for every job, as for one job."})
    idempotency_key = fields.String(allow_none=True, validate=validate.Length(1, 200), metadata={
        "description": "Repeating a key returns the first fan-out instead of creating another."})

    @validates_schema
    def needs_targets(self, data: dict[str, Any], **_: Any) -> None:
        check_runnable(data)
        if not is_fanout(data):
            raise ValidationError("Give agents and/or tags, or stages.", "agents")


class FanoutJobSchema(Schema):
    agent = fields.String()
    job_id = fields.String(metadata={"example": "job_a3f8c9d2"})


class SkippedSchema(Schema):
    agent = fields.String()
    reason = fields.String(metadata={
        "enum": ["offline", "draining", "not_found", "script_not_in_manifest"]})


class FanoutCreatedSchema(Schema):
    fanout_id = fields.String(metadata={"example": "fan_3f9a..."})
    jobs = fields.List(fields.Nested(FanoutJobSchema))
    skipped = fields.List(fields.Nested(SkippedSchema))


class FanoutSummarySchema(Schema):
    fanout_id = fields.String()
    kind = fields.String(metadata={"description": "script or flow"})
    script = fields.String(metadata={"description": "The script, or the flow for kind flow."})
    params = fields.Dict(keys=fields.String(), values=fields.String())
    variables = fields.Dict(allow_none=True)
    status = fields.String(metadata={"enum": [*(s.value for s in FanoutStatus),
                                              "awaiting_approval", "baking", "paused"]})
    done = fields.Boolean()
    stop_reason = fields.String(allow_none=True, metadata={
        "enum": ["max_errors", "stage_failed", "cancelled", None]})
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "Jobs by status."})
    max_concurrency = fields.String(allow_none=True)
    max_errors = fields.String(allow_none=True)
    current_stage = fields.Integer()
    created_at = UTCDateTime()
    completed_at = UTCDateTime(allow_none=True)
    gate = fields.String(allow_none=True, metadata={
        "description": "What holds the next stage: awaiting_approval or baking."})
    gate_until = UTCDateTime(allow_none=True)
    paused_at = UTCDateTime(allow_none=True)
    rerun_of = fields.String(allow_none=True)
    schedule_id = fields.String(allow_none=True)


class FanoutAgentSchema(Schema):
    script = fields.String(metadata={"description": "What ran (a stage's verify script "
                                                   "shows here)."})
    agent = fields.String(allow_none=True)
    job_id = fields.String()
    status = fields.String(metadata={"enum": [s.value for s in JobStatus]})
    exit_code = fields.Integer(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    stage = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    held = fields.Boolean(metadata={"description": "Waiting for its turn (not queued yet)."})
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    state = fields.String(metadata={
        "description": "What happened to this target: waiting, queued, delivered, running, "
                       "success, failed, not_started, never_delivered, lost, "
                       "lost_late_result, ..."})
    late_result = fields.Dict(allow_none=True, metadata={
        "description": "A result that arrived after the job was declared lost."})


class DiffGroupSchema(Schema):
    count = fields.Integer()
    status = fields.String()
    exit_code = fields.Integer(allow_none=True)
    stdout = fields.String(metadata={"description": "The group's output, shown once."})
    agents = fields.List(fields.String())


class StageProgressSchema(Schema):
    stage = fields.Integer()
    agents = fields.List(fields.String())
    max_concurrency = fields.Integer(allow_none=True)
    selector = fields.Dict()
    state = fields.String(metadata={
        "enum": ["waiting", "running", "succeeded", "failed", "cancelled"]})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class FanoutReportSchema(FanoutSummarySchema):
    held = fields.Integer(metadata={"description": "Pending jobs not queued yet."})
    errors = fields.Integer()
    selection = fields.Dict()
    skipped = fields.List(fields.Nested(SkippedSchema))
    stages = fields.List(fields.Nested(StageProgressSchema))
    agents = fields.List(fields.Nested(FanoutAgentSchema))
    diff = fields.List(fields.Nested(DiffGroupSchema), metadata={
        "description": "Agents grouped by identical (status, exit_code, stdout), largest "
                       "group first."})


class FanoutQueryArgsSchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in FanoutStatus]))
    script = fields.String()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(metadata={"description": "next_cursor of the previous page"})


class FanoutPageSchema(Schema):
    fanouts = fields.List(fields.Nested(FanoutSummarySchema))
    next_cursor = fields.String(allow_none=True)
