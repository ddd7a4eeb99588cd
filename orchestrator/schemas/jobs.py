"""Schemas for /trigger-script and /jobs: requests, the job resource, pages of jobs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orchestrator.models import JobStatus
from orchestrator.schemas.job_steps import JobStepSchema
from orchestrator.schemas.targets import TargetFieldsSchema, check_target

PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TIMEOUT = 86400
DEFAULT_TIMEOUT = 300
MAX_QUEUE_TTL = 30 * 86400
MAX_PARAMS = 100
MAX_PARAM_CHARS = 32 * 1024
MAX_VARIABLES_CHARS = 64 * 1024


class UTCDateTime(fields.DateTime):
    """ISO 8601 in UTC with a ``Z`` (``2026-03-10T14:32:11.123Z``); naive input means UTC."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MaskedUrl(fields.String):
    """A stored URL as answers show it: credentials in it (user:password@, the query
    string, where tokens travel) are replaced by ``***``."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else mask_url(str(value))


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{pair.partition('=')[0]}=***" for pair in parts.query.split("&")
                     if pair) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def validate_params(params: dict[str, Any]) -> None:
    """Params become environment variables: names like shell variables, scalar values."""
    if len(params) > MAX_PARAMS:
        raise ValidationError(f"At most {MAX_PARAMS} params.")
    errors: dict[str, list[str]] = {}
    for name, value in params.items():
        if not PARAM_NAME_RE.match(name):
            errors[name] = ["Param names must match [A-Za-z_][A-Za-z0-9_]*."]
        elif not isinstance(value, str | int | float | bool) or value is None:
            errors[name] = ["Values must be strings, numbers or booleans."]
        elif isinstance(value, str) and (len(value) > MAX_PARAM_CHARS or "\x00" in value):
            errors[name] = [f"At most {MAX_PARAM_CHARS} characters, no NUL byte."]
    if errors:
        raise ValidationError(errors)


def validate_variables(variables: dict[str, Any]) -> None:
    """Flow variables: names like the flow's own (``${name}``), JSON values, bounded size."""
    if len(variables) > MAX_PARAMS:
        raise ValidationError(f"At most {MAX_PARAMS} variables.")
    bad = [name for name in variables if not PARAM_NAME_RE.match(name)]
    if bad:
        raise ValidationError({name: ["Variable names must match [A-Za-z_][A-Za-z0-9_]*."]
                               for name in bad})
    if len(json.dumps(variables)) > MAX_VARIABLES_CHARS:
        raise ValidationError(f"At most {MAX_VARIABLES_CHARS} characters as JSON.")


def check_runnable(data: dict[str, Any]) -> None:
    """Exactly one of ``run_script`` / ``run_flow``; ``variables`` only with a flow."""
    if bool(data.get("run_script")) == bool(data.get("run_flow")):
        raise ValidationError("Give exactly one of run_script and run_flow.", "run_script")
    if data.get("run_script") and data.get("variables"):
        raise ValidationError("variables are for run_flow; a script takes params.",
                              "variables")
    if data.get("run_flow") and data.get("params"):
        raise ValidationError("params are for run_script; a flow takes variables.", "params")


class TriggerSchema(TargetFieldsSchema):
    """One agent (``agent``), a pool (``pool``), or a fan-out (``agents``/``tags``/``stages``,
    fields from ``TargetFieldsSchema``)."""

    agent = fields.String(validate=validate.Length(1, 200),
                          metadata={"example": "prod-server-1"})
    pool = fields.String(validate=validate.Length(1, 64), metadata={
        "description": "Instead of `agent`: a tag; the first free online agent carrying it "
                       "runs the job.", "example": "workers"})
    run_script = fields.String(validate=validate.Length(1, 255), metadata={
        "example": "backup.sh", "description": "The script to run (or give `run_flow`)."})
    run_flow = fields.String(validate=validate.Length(1, 255), metadata={
        "example": "health", "description": "A flow of the agent's manifest to run instead "
                                             "of a script."})
    variables = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                            validate=validate_variables, metadata={
                                "example": {"base_url": "http://api.internal"},
                                "description": "run_flow only: the flow's variables (JSON "
                                               "values; they override the flow's env)."})
    params = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                         load_default=dict, validate=validate_params,
                         metadata={"example": {"target": "s3://my-bucket"},
                                   "description": "Passed to the script as environment "
                                                  "variables (values as strings)."})
    async_exec = fields.Boolean(load_default=True, metadata={
        "description": "false: wait up to `timeout` seconds and answer with the finished job."})
    timeout = fields.Integer(load_default=DEFAULT_TIMEOUT,
                             validate=validate.Range(1, MAX_TIMEOUT),
                             metadata={"description": "Seconds the script may run."})
    webhook_url = fields.Url(schemes={"http", "https"}, require_tld=False, allow_none=True,
                             validate=validate.Length(max=2000))
    idempotency_key = fields.String(allow_none=True, validate=validate.Length(1, 200), metadata={
        "description": "Repeating a key returns the first job instead of creating another."})
    queue_ttl = fields.Integer(allow_none=True, validate=validate.Range(1, MAX_QUEUE_TTL),
                               metadata={"description": "Seconds the job may wait for its "
                                                        "agent before it expires."})

    @validates_schema
    def one_runnable(self, data: dict[str, Any], **_: Any) -> None:
        check_runnable(data)
        check_target(data)


class JobSummarySchema(Schema):
    """A job without its output (list pages); ``GET /jobs/{job_id}`` has the output."""

    job_id = fields.String(attribute="id", metadata={"example": "job_a3f8c9d2"})
    agent = fields.String(attribute="agent_name", allow_none=True)
    kind = fields.String(metadata={"enum": ["script", "flow"]})
    script = fields.String(metadata={"description": "The script's name (a flow job: the "
                                                    "flow's name, also in `flow`)."})
    flow = fields.String(allow_none=True, metadata={"description": "Flow jobs: the flow."})
    params = fields.Dict(keys=fields.String(), values=fields.String())
    variables = fields.Dict(keys=fields.String(), metadata={
        "description": "Flow jobs: the trigger's variables."})
    status = fields.String(metadata={"enum": [s.value for s in JobStatus]})
    exit_code = fields.Integer(allow_none=True)
    truncated = fields.Dict(keys=fields.String(), values=fields.Boolean())
    duration_ms = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    error = fields.String(allow_none=True)
    late_result = fields.Dict(allow_none=True, metadata={
        "description": "A result the agent sent after the hub had ended the job as lost."})
    lock = fields.String(allow_none=True)
    concurrency_group = fields.String(allow_none=True)
    timeout = fields.Integer()
    webhook_url = MaskedUrl(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    expires_at = UTCDateTime(allow_none=True)
    cancel_requested_at = UTCDateTime(allow_none=True)
    dispatch_count = fields.Integer()
    fanout_id = fields.String(allow_none=True, metadata={
        "description": "The fan-out that created the job, if any."})
    pool = fields.String(allow_none=True, metadata={
        "description": "Pool jobs: the tag whose agents shared it (`agent` ran it)."})


class JobSchema(JobSummarySchema):
    """A job with its output (partial while running)."""

    stdout = fields.String()
    stderr = fields.String()
    steps = fields.List(fields.Nested(JobStepSchema), metadata={
        "description": "Flow jobs: each step as reported so far (in the order they started)."})
    diagnosis = fields.Dict(allow_none=True, metadata={
        "description": "The latest AI diagnosis (POST /jobs/{id}/diagnose): summary, "
                       "likely_cause, suggested_fix, provider, model, created_at."})


class JobQueryArgsSchema(Schema):
    agent = fields.String(validate=validate.Length(max=200))
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    script = fields.String(validate=validate.Length(max=255))
    fanout_id = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Only the jobs of this fan-out."})
    pool = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Only the jobs of this pool (tag)."})
    since = UTCDateTime(metadata={"description": "created_at >= since (ISO 8601)"})
    until = UTCDateTime(metadata={"description": "created_at < until (ISO 8601)"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    cursor = fields.String(validate=validate.Length(max=500), metadata={
        "description": "next_cursor of the previous page"})


class JobWaitArgsSchema(Schema):
    wait = fields.Float(validate=validate.Range(0, 60, min_inclusive=False), metadata={
        "description": "Long-poll: answer once the job is terminal or after this many "
                       "seconds (0 < wait <= 60)."})


class JobLogsArgsSchema(Schema):
    follow = fields.Boolean(load_default=False, metadata={
        "description": "Stream as Server-Sent Events until the job ends."})
    stream = fields.String(load_default="stdout", validate=validate.OneOf(["stdout", "stderr"]),
                           metadata={"description": "Without follow: which stream to read."})
    after = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Resume after this event id (like the Last-Event-ID header)."})


class JobPageSchema(Schema):
    jobs = fields.List(fields.Nested(JobSummarySchema))
    next_cursor = fields.String(allow_none=True)
