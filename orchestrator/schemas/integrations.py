"""Schemas for /integrations, /admin/integrations, /settings/webhook-secret and deliveries."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from orchestrator.schemas.jobs import UTCDateTime
from orchestrator.schemas.patch import NonEmptyPatchSchema
from orchestrator.services.ai.providers import AI_PROVIDERS
from orchestrator.services.integrations import INTEGRATION_TYPES
from orchestrator.services.integrations.kinds import GIT_PROVIDERS, KINDS

NAME = validate.Length(1, 200)
CONFIG_DOC = ("Type settings plus `events` (the event types to receive). Secret fields "
              "(webhook_url of slack/discord/teams, routing_key, api_key, token, secret, "
              "password) may be given here or in `secrets`; they are stored encrypted.")


class IntegrationCreateSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf((*INTEGRATION_TYPES, *KINDS)))
    provider = fields.String(validate=validate.OneOf((*AI_PROVIDERS, *GIT_PROVIDERS)), metadata={
        "description": "ai_provider: openai, anthropic or ollama; git: github, gitlab or gitea"})
    name = fields.String(required=True, validate=NAME, metadata={"example": "ops-alerts"})
    config = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": CONFIG_DOC,
        "example": {"webhook_url": "https://hooks.slack.com/services/...",
                    "events": ["job.failed", "agent.offline"]}})
    secrets = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    enabled = fields.Boolean(load_default=True)


class IntegrationPatchSchema(NonEmptyPatchSchema):
    name = fields.String(validate=NAME)
    config = fields.Dict(keys=fields.String(), metadata={
        "description": "Keys to change; null removes a key."})
    secrets = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Only the secrets named are replaced."})
    enabled = fields.Boolean()


class IntegrationSchema(Schema):
    id = fields.String(metadata={"example": "int_3f9a..."})
    type = fields.String()
    provider = fields.String(allow_none=True)
    name = fields.String()
    scope = fields.String(metadata={"description": "tenant, or global (instance-wide)"})
    config = fields.Dict()
    secrets = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"example": {"webhook_url": "configured"}})
    enabled = fields.Boolean()
    status = fields.String(metadata={"description": "active, or error after a failed test"})
    last_test_at = UTCDateTime(allow_none=True)
    last_test_status = fields.String(allow_none=True)
    last_test_error = fields.String(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class IntegrationListSchema(Schema):
    integrations = fields.List(fields.Nested(IntegrationSchema))


class IntegrationTestSchema(Schema):
    status = fields.String(metadata={"description": "ok or error"})
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()
    integration = fields.Nested(IntegrationSchema)


class WebhookSecretSchema(Schema):
    configured = fields.Boolean()
    created_at = UTCDateTime(allow_none=True)
    rotated_at = UTCDateTime(allow_none=True)


class WebhookSecretCreatedSchema(Schema):
    secret = fields.String(metadata={"example": "whsec_..."})
    created_at = UTCDateTime(allow_none=True)
    rotated_at = UTCDateTime(allow_none=True)
    warning = fields.String(dump_default="Store this secret now: it will not be shown again.")


class DeliverySchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "webhook or integration"})
    event_type = fields.String(allow_none=True)
    integration_id = fields.String(allow_none=True)
    integration_type = fields.String(allow_none=True)
    target = fields.String(allow_none=True, metadata={"description": "scheme://host only"})
    attempt = fields.Integer()
    success = fields.Boolean()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    next_retry_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))
