"""Schemas for agents: the agent protocol's bodies (``agent/protocol.py``) and the fleet view.

Protocol request schemas ignore unknown fields, so a newer agent can talk to
an older hub.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from orchestrator.schemas.job_steps import StepEventSchema
from orchestrator.schemas.jobs import UTCDateTime

AGENT_NAME = {"validate": validate.Length(1, 128), "metadata": {"example": "prod-server-1"}}
MAX_RESULT_CHARS = 4 * 1024 * 1024
RESULT_STATUSES = ("success", "failed", "timeout", "cancelled")


class ProtocolSchema(Schema):
    class Meta:
        unknown = EXCLUDE


PARAM_TYPES = ("string", "integer", "number", "boolean")


def _scalar(value: object) -> None:
    if not isinstance(value, str | int | float | bool) or (
            isinstance(value, str) and len(value) > 32 * 1024):
        raise ValidationError("Must be a string (at most 32 KiB), number or boolean.")


def _scalars(values: list) -> None:
    for value in values:
        _scalar(value)


class ManifestParamSchema(ProtocolSchema):
    """One declared param of a script (``agent/params.py``)."""

    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$"),
                         metadata={"example": "target"})
    type = fields.String(load_default="string", validate=validate.OneOf(PARAM_TYPES))
    required = fields.Boolean(load_default=False)
    default = fields.Raw(allow_none=True, validate=_scalar, metadata={"example": False})
    pattern = fields.String(allow_none=True, validate=validate.Length(max=256),
                            metadata={"example": "^[A-Za-z0-9_./:-]+$"})
    enum = fields.List(fields.Raw(), allow_none=True,
                       validate=[validate.Length(1, 100), _scalars])
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))


class ManifestScriptSchema(ProtocolSchema):
    name = fields.String(required=True, validate=validate.Length(1, 255))
    description = fields.String(allow_none=True, load_default=None,
                                validate=validate.Length(max=2000))
    params = fields.List(fields.Nested(ManifestParamSchema), load_default=list,
                         validate=validate.Length(max=100))
    lock = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=200))


class ManifestSchema(ProtocolSchema):
    scripts = fields.List(fields.Nested(ManifestScriptSchema), load_default=list,
                          validate=validate.Length(max=10000))
    flows = fields.List(fields.Dict(), load_default=list, validate=validate.Length(max=1000))
    allow_undeclared_params = fields.Boolean(load_default=False, metadata={
        "description": "The agent passes undeclared params (as PARAM_<name> only)."})
    inline_flows = fields.Boolean(load_default=False)  # ALLOW_INLINE_FLOWS on the agent


class RegisterAgentSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)
    url = fields.String(allow_none=True, validate=validate.Length(max=500))
    api_key = fields.String(load_only=True, allow_none=True, metadata={
        "description": "Optional: an agent-scope key to bind to this agent name."})
    tags = fields.List(fields.String(validate=validate.Length(1, 64)),
                       validate=validate.Length(max=50), metadata={"example": ["production"]})
    version = fields.String(allow_none=True, validate=validate.Length(max=50))
    workers = fields.Integer(allow_none=True, validate=validate.Range(0, 10000))
    hostname = fields.String(allow_none=True, validate=validate.Length(max=255))
    manifest = fields.Nested(ManifestSchema, allow_none=True)
    manifest_error = fields.String(allow_none=True, validate=validate.Length(max=4000))
    heartbeat_interval = fields.Float(allow_none=True, validate=validate.Range(0.1, 86400))
    running_jobs = fields.List(fields.String(validate=validate.Length(max=64)),
                               validate=validate.Length(max=10000), metadata={
                                   "description": "Jobs the agent still owns; running jobs of "
                                                  "this agent not listed end as agent_restarted."})


class RegisterAgentResultSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    agent = fields.String(metadata={"example": "prod-server-1"})
    agent_id = fields.String(metadata={"example": "agt_3f9a..."})
    heartbeat_interval = fields.Float()
    poll_wait = fields.Float()
    api_key_bound = fields.Boolean(metadata={"description": "Only when api_key was given."})
    warning = fields.String(metadata={"description": "What was ignored or what to expect."})


class HeartbeatSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)
    manifest = fields.Nested(ManifestSchema, allow_none=True)
    manifest_error = fields.String(allow_none=True, validate=validate.Length(max=4000))
    running_jobs = fields.List(fields.String(validate=validate.Length(max=64)),
                               load_default=list, validate=validate.Length(max=10000))
    draining = fields.Boolean(load_default=False)
    heartbeat_interval = fields.Float(allow_none=True, validate=validate.Range(0.1, 86400))


class CommandSchema(Schema):
    type = fields.String(metadata={"example": "cancel"})
    job_id = fields.String()


class HeartbeatResultSchema(Schema):
    status = fields.String()
    commands = fields.List(fields.Nested(CommandSchema))


class PollSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)
    max_jobs = fields.Integer(load_default=1, validate=validate.Range(1, 100))
    wait = fields.Float(load_default=None, allow_none=True, validate=validate.Range(0, 3600))


class AssignmentSchema(Schema):
    job_id = fields.String()
    kind = fields.String(metadata={"enum": ["script", "flow"]})
    script = fields.String()
    params = fields.Dict(keys=fields.String(), values=fields.String())
    flow = fields.String(metadata={"description": "kind flow: the flow's name"})
    variables = fields.Dict(keys=fields.String(), metadata={
        "description": "kind flow: the trigger's variables"})
    definition = fields.Dict(metadata={
        "description": "kind flow, inline dispatch only: the flow definition to run"})
    timeout = fields.Integer()
    lease_expires_at = UTCDateTime()


class PollResultSchema(Schema):
    jobs = fields.List(fields.Nested(AssignmentSchema))


class AgentNameSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)


class StartResultSchema(Schema):
    status = fields.String(metadata={"example": "running"})


class OutputChunkSchema(ProtocolSchema):
    offset = fields.Integer(required=True, validate=validate.Range(0, 2**62))
    data = fields.String(required=True, validate=validate.Length(max=1024 * 1024))


class OutputSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)
    stdout = fields.Nested(OutputChunkSchema, allow_none=True)
    stderr = fields.Nested(OutputChunkSchema, allow_none=True)


class OutputResultSchema(Schema):
    cancel = fields.Boolean()


class ResultSchema(ProtocolSchema):
    agent_name = fields.String(required=True, **AGENT_NAME)
    status = fields.String(required=True, validate=validate.OneOf(RESULT_STATUSES))
    exit_code = fields.Integer(allow_none=True, load_default=None,
                               validate=validate.Range(-(2**31), 2**31 - 1))
    stdout = fields.String(load_default="", validate=validate.Length(max=MAX_RESULT_CHARS))
    stderr = fields.String(load_default="", validate=validate.Length(max=MAX_RESULT_CHARS))
    truncated = fields.Dict(keys=fields.String(), values=fields.Boolean(), load_default=dict)
    duration_ms = fields.Integer(allow_none=True, load_default=None,
                                 validate=validate.Range(0, 2**31 - 1))
    started_at = UTCDateTime(allow_none=True, load_default=None)
    error = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=10000))
    events = fields.List(fields.Nested(StepEventSchema), load_default=list, metadata={
        "description": "Flow jobs: the step events not acknowledged yet (applied first)."})


class OkSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class AgentSchema(Schema):
    """One agent in ``GET /agents`` (the response is an object keyed by agent name)."""

    agent_id = fields.String(attribute="id")
    status = fields.Method("get_status", metadata={"enum": ["online", "offline"]})
    tags = fields.List(fields.String())
    url = fields.String(allow_none=True)
    last_heartbeat = UTCDateTime(allow_none=True)
    registered_at = UTCDateTime()
    version = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    workers = fields.Integer(allow_none=True)
    running_jobs = fields.List(fields.String(), attribute="running_job_ids")
    scripts = fields.Method("get_scripts")
    manifest_error = fields.String(allow_none=True)
    draining = fields.Boolean()
    paused = fields.Method("get_paused")
    paused_until = UTCDateTime(allow_none=True)
    pause_note = fields.String(allow_none=True)
    drain_requested_at = UTCDateTime(allow_none=True)
    locks = fields.Method("get_locks", metadata={
        "description": "Locks and concurrency groups its leased or running jobs hold."})

    def get_paused(self, agent: object) -> bool:
        return agent.is_paused()  # type: ignore[attr-defined]

    def get_locks(self, agent: object) -> list[dict[str, object]]:
        from orchestrator.services.locks import held_locks  # noqa: PLC0415 - schemas load first

        return held_locks(agent)  # type: ignore[arg-type]

    def get_status(self, agent: object) -> str:
        return "online" if agent.is_online() else "offline"  # type: ignore[attr-defined]

    def get_scripts(self, agent: object) -> list[str]:
        return agent.script_names()  # type: ignore[attr-defined]


class AgentQueryArgsSchema(Schema):
    tag = fields.String(metadata={"description": "Only agents carrying this tag."})
    status = fields.String(validate=validate.OneOf(["online", "offline", "draining"]),
                           metadata={"description": "online, offline, or draining "
                                                    "(online and draining)."})
    name = fields.String(metadata={"description": "Only agents whose name contains this."})


class ScriptsQuerySchema(Schema):
    agent = fields.String(required=True, **AGENT_NAME)


class ScriptEntrySchema(Schema):
    name = fields.String()
    description = fields.String(allow_none=True)
    params = fields.List(fields.Nested(ManifestParamSchema), metadata={
        "description": "The params the script declares; others are refused (422)."})


class ScriptsSchema(Schema):
    agent = fields.String()
    scripts = fields.List(fields.Nested(ScriptEntrySchema))
    flows = fields.List(fields.Dict())
