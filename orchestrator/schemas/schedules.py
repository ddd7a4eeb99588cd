"""Schemas for /schedules: create/patch bodies, the schedule resource, its runs."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from orchestrator.schemas.jobs import (
    MAX_TIMEOUT,
    MaskedUrl,
    UTCDateTime,
    validate_params,
    validate_variables,
)
from orchestrator.schemas.locks import Duration, LockFieldsSchema
from orchestrator.schemas.patch import NonEmptyPatchSchema
from orchestrator.schemas.targets import max_concurrency_field, max_errors_field

OVERLAP_POLICIES = ("skip", "allow")
NAME = validate.Length(1, 200)


class ScheduleFieldsSchema(LockFieldsSchema):
    """Fields a client may set (all optional here; ``ScheduleCreateSchema`` requires some)."""

    name = fields.String(allow_none=True, validate=NAME)
    agent = fields.String(allow_none=True, validate=NAME, metadata={"example": "prod-server-1"})
    agents = fields.List(fields.String(validate=NAME), allow_none=True,
                         validate=validate.Length(1, 500),
                         metadata={"description": "Several agents: one job each per fire."})
    tags = fields.List(fields.String(validate=NAME), allow_none=True,
                       validate=validate.Length(1, 20),
                       metadata={"description": "Every online agent having all these tags."})
    pool = fields.String(allow_none=True, validate=NAME)
    script = fields.String(validate=validate.Length(1, 255), metadata={"example": "backup.sh"})
    run_flow = fields.String(validate=validate.Length(1, 255), metadata={
        "description": "A whitelisted flow to run instead of a script."})
    variables = fields.Dict(keys=fields.String(), allow_none=True, validate=validate_variables,
                            metadata={"description": "Trigger variables for run_flow."})
    cron_expression = fields.String(validate=validate.Length(1, 200), metadata={
        "example": "0 2 * * *",
        "description": "5 fields: minute hour day-of-month month day-of-week."})
    timezone = fields.String(validate=validate.Length(1, 64),
                             metadata={"example": "America/New_York"})
    params = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                         validate=validate_params, metadata={"example": {"target": "s3://b"}})
    webhook_url = fields.Url(schemes={"http", "https"}, allow_none=True,
                             validate=validate.Length(max=2000))
    timeout = fields.Integer(allow_none=True, validate=validate.Range(1, MAX_TIMEOUT))
    enabled = fields.Boolean()
    overlap_policy = fields.String(validate=validate.OneOf(OVERLAP_POLICIES), metadata={
        "description": "skip (default): no new job while the previous one on that agent "
                       "still runs; allow: start anyway."})
    misfire_grace_time = fields.Integer(validate=validate.Range(0, 7 * 86400), metadata={
        "description": "Seconds a fire time may be late (scheduler down) and still run."})
    coalesce = fields.Boolean(metadata={
        "description": "Several late fire times within the grace run once (true) or each."})
    max_concurrency = max_concurrency_field()
    max_errors = max_errors_field()
    expect_success_every = Duration(allow_none=True, metadata={
        "description": 'Dead-man\'s switch: "26h", "90m", seconds, or "auto" (the cron '
                       "interval plus misfire_grace_time). No successful run in that window "
                       "raises schedule.missed; the next success, schedule.recovered."})
    pause_after_failures = fields.Integer(allow_none=True, validate=validate.Range(1, 1000),
                                          metadata={"description": "Disable the schedule "
                                                    "after N consecutive failed runs."})


class ScheduleCreateSchema(ScheduleFieldsSchema):
    """``script`` or ``run_flow`` (exactly one) and ``cron_expression`` are required."""

    cron_expression = fields.String(required=True, validate=validate.Length(1, 200),
                                    metadata={"example": "0 2 * * *"})


class SchedulePatchSchema(NonEmptyPatchSchema, ScheduleFieldsSchema):
    pass


class ScheduleSchema(Schema):
    id = fields.String(metadata={"example": "sched_abc123"})
    name = fields.String(allow_none=True)
    agent = fields.String(allow_none=True)
    agents = fields.List(fields.String(), allow_none=True)
    tags = fields.List(fields.String(), allow_none=True)
    pool = fields.String(allow_none=True)
    kind = fields.String(metadata={"description": "script or flow"})
    script = fields.String()
    run_flow = fields.String(allow_none=True)
    variables = fields.Dict(allow_none=True)
    cron_expression = fields.String()
    timezone = fields.String()
    next_fire = UTCDateTime(allow_none=True, metadata={"example": "2026-03-11T02:00:00Z"})
    params = fields.Dict()
    webhook_url = MaskedUrl(allow_none=True)
    timeout = fields.Integer(allow_none=True)
    enabled = fields.Boolean()
    overlap_policy = fields.String()
    misfire_grace_time = fields.Integer()
    coalesce = fields.Boolean()
    last_fire_at = UTCDateTime(allow_none=True)
    job_options = fields.Dict(allow_none=True, metadata={
        "description": "lock, concurrency_group, concurrency_limit of its jobs."})
    max_concurrency = fields.String(allow_none=True)
    max_errors = fields.String(allow_none=True)
    expect_success_every = fields.Integer(allow_none=True, metadata={"description": "Seconds."})
    missed_since = UTCDateTime(allow_none=True)
    pause_after_failures = fields.Integer(allow_none=True)
    paused_reason = fields.String(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class ScheduleQueryArgsSchema(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    cursor = fields.String(metadata={"description": "next_cursor of the previous page"})


class SchedulePageSchema(Schema):
    schedules = fields.List(fields.Nested(ScheduleSchema))
    next_cursor = fields.String(allow_none=True)


class RunJobSchema(Schema):
    job_id = fields.String()
    agent = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    exit_code = fields.Integer(allow_none=True)


class ScheduleRunSchema(Schema):
    id = fields.Integer()
    fire_time = UTCDateTime()
    outcome = fields.String(metadata={
        "description": "fired, manual, skipped (overlap), missed, coalesced or failed"})
    reason = fields.String(allow_none=True)
    created_at = UTCDateTime()
    fanout_id = fields.String(allow_none=True, metadata={
        "description": "Schedules over tags or several agents: the fire's fan-out."})
    jobs = fields.List(fields.Nested(RunJobSchema))


class ScheduleRunListSchema(Schema):
    runs = fields.List(fields.Nested(ScheduleRunSchema))


class RunNowSchema(Schema):
    outcome = fields.String()
    fire_time = UTCDateTime()
    reason = fields.String(allow_none=True)
    job_ids = fields.List(fields.String())


class MissedRunSchema(Schema):
    id = fields.Integer()
    fire_time = UTCDateTime()
    reason = fields.String(allow_none=True)
    created_at = UTCDateTime()


class MissedListSchema(Schema):
    missed = fields.List(fields.Nested(MissedRunSchema))


class BackfillSchema(Schema):
    from_ = fields.DateTime(required=True, data_key="from")
    to = fields.DateTime(required=True)


class BackfillAnswerSchema(Schema):
    runs = fields.List(fields.Nested(RunNowSchema))
