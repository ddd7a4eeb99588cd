"""Schemas for /ai-config, /admin/ai-config, AI analyses and /jobs/{id}/diagnose."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from orchestrator.schemas.jobs import UTCDateTime

ID = validate.Length(1, 32)


class AgentOverrideSchema(Schema):
    agent_name = fields.String(required=True, validate=validate.Length(1, 64), metadata={
        "description": "An AI task: diagnosis, repair or flakiness", "example": "diagnosis"})
    integration_id = fields.String(required=True, validate=ID)


class AiConfigSchema(Schema):
    default_provider = fields.String(allow_none=True, load_default=None, validate=ID, metadata={
        "description": "The ai_provider integration used when no override names the task"})
    agent_overrides = fields.List(fields.Nested(AgentOverrideSchema), load_default=list)
    auto_diagnose = fields.Boolean(metadata={
        "description": "Tenants only: diagnose every failed or timed-out job automatically"})


class AiConfigViewSchema(AiConfigSchema):
    implemented_agents = fields.List(fields.String())


class ResolveArgsSchema(Schema):
    task = fields.String(load_default="diagnosis", metadata={"description": "The AI task"})


class ResolutionSchema(Schema):
    task = fields.String()
    source = fields.String(metadata={"description": (
        "The chain's link: override, tenant_default, tenant_integration, global_override, "
        "global_default, global_integration or environment")})
    integration_id = fields.String(allow_none=True)
    provider = fields.String()
    model = fields.String()
    base_url = fields.String()


class DiagnoseSchema(Schema):
    task = fields.String(load_default="diagnosis", metadata={
        "description": "diagnosis (root cause) or repair (a suggested fix)"})


class AnalysisCreateSchema(Schema):
    task = fields.String(required=True, metadata={"example": "flakiness"})
    job_id = fields.String(validate=ID)
    script = fields.String(validate=validate.Length(1, 255))
    schedule_id = fields.String(validate=ID)


class AnalysisSchema(Schema):
    id = fields.String(metadata={"example": "ai_3f9a..."})
    task = fields.String()
    job_id = fields.String(allow_none=True)
    script = fields.String(allow_none=True)
    schedule_id = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "queued, done or error"})
    result = fields.Dict(allow_none=True, metadata={"description": (
        "{summary, likely_cause, suggested_fix, provider, model, created_at, source, "
        "integration_id, task}")})
    error = fields.String(allow_none=True)
    created_at = UTCDateTime()
    finished_at = UTCDateTime(allow_none=True)
