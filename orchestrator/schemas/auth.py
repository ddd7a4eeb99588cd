"""Schemas for /auth: sign-up, verification, sessions, and API keys."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, pre_load, validate

from orchestrator.models import Scope
from orchestrator.schemas.patch import NonEmptyPatchSchema

SCOPE_NAMES = [scope.value for scope in Scope]


class EmailField(fields.Email):
    """An email address (at most 254 characters), stripped and lower-cased, then validated."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(max=254), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class _StripStrings(Schema):
    @pre_load
    def strip_names(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            return {k: v.strip() if k in ("name", "tenant_name", "code") and isinstance(v, str)
                    else v for k, v in data.items()}
        return data


class RegisterSchema(_StripStrings):
    email = EmailField(required=True, metadata={"example": "you@company.com"})
    password = fields.String(required=True, validate=validate.Length(max=1024),
                             load_only=True,
                             metadata={"description": "At least 12 characters, not the email."})
    tenant_name = fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                                metadata={"description": "Defaults to the email's domain."})


def _is_verified(user: Any) -> bool:
    return user.email_verified_at is not None


class RegisteredSchema(Schema):
    """The same answer for every email (new, pending or taken): no account enumeration."""

    email = fields.String()
    email_verified = fields.Boolean()
    message = fields.Constant("We mailed a 6-digit code to this address: confirm it with "
                              "POST /auth/verify-email {email, code}. If the address already "
                              "has an account, the mail says how to reset its password.")


class VerifyEmailSchema(_StripStrings):
    email = EmailField(required=True)
    code = fields.String(required=True, validate=validate.Length(min=1, max=32),
                         metadata={"example": "042917"})


class VerifiedSchema(Schema):
    """A user whose address was just verified (dumped from the ``User`` model)."""

    user_id = fields.String(attribute="id")
    email = fields.String()
    email_verified = fields.Function(_is_verified, metadata={"type": "boolean"})
    message = fields.Constant("Email verified. You can now log in with POST /auth/login.")


class ResendCodeSchema(Schema):
    email = EmailField(required=True)


class PasswordResetSchema(Schema):
    email = EmailField(required=True)


class PasswordResetConfirmSchema(_StripStrings):
    email = EmailField(required=True)
    code = fields.String(required=True, validate=validate.Length(min=1, max=32),
                         metadata={"example": "042917"})
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024),
                             metadata={"description": "The new password (12+ characters)."})


class ResetSentSchema(Schema):
    message = fields.Constant("If this address belongs to a verified account, a reset code "
                              "is on its way (valid 15 minutes).")


class PasswordChangedSchema(Schema):
    message = fields.Constant("Password changed; every session was signed out. Log in again.")


class CodeSentSchema(Schema):
    message = fields.Constant("If this address belongs to an account waiting for "
                              "verification, a new code is on its way. Older codes no "
                              "longer work.")


class LoginSchema(Schema):
    email = EmailField(required=True, metadata={"example": "you@company.com"})
    password = fields.String(required=True, validate=validate.Length(max=1024), load_only=True)


class TokenPairSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "bearer"})
    expires_in = fields.Integer(metadata={"description": "Access token lifetime in seconds."})


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class LogoutSchema(Schema):
    refresh_token = fields.String(load_default=None, validate=validate.Length(max=4096),
                                  metadata={"description": "Also end this refresh token's "
                                                           "session."})


class MeSchema(Schema):
    user_id = fields.String()
    email = fields.String()
    tenant_id = fields.String()
    tenant_name = fields.String()
    is_admin = fields.Boolean()
    scope = fields.String(metadata={"example": "admin"})


POOL_NAME = fields.String(validate=[validate.Length(1, 64),
                                    validate.Regexp(r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:-]*)$")])
POOLS_DOC = {"description": "Agent keys: the tags (pools) an agent using this key may register "
             "with; [\"*\"] grants every tag. Default: none.", "example": ["production"]}


class ApiKeyCreateSchema(_StripStrings):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"example": "CI Pipeline"})
    expires_days = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=1, max=3650),
                                  metadata={"example": 90})
    scope = fields.String(load_default=Scope.OPERATOR.value, validate=validate.OneOf(SCOPE_NAMES),
                          metadata={"description": "admin, operator, read or agent."})
    pools = fields.List(POOL_NAME, load_default=None, validate=validate.Length(max=50),
                        metadata=POOLS_DOC)


class ApiKeyUpdateSchema(NonEmptyPatchSchema):
    pools = fields.List(POOL_NAME, validate=validate.Length(max=50), metadata=POOLS_DOC)
    agent_name = fields.String(allow_none=True, validate=validate.Length(1, 128), metadata={
        "description": "Rebind the agent name this agent key acts as (null: unbind); "
                       "any other key bound to that name loses it."})


class ApiKeySchema(Schema):
    """A key as listed: never the raw key nor its hash."""

    id = fields.String(metadata={"example": "key_5d1e..."})
    key_prefix = fields.String(metadata={"example": "sm_live_xyz1"})
    name = fields.String()
    scope = fields.String()
    agent_name = fields.String(allow_none=True)
    pools = fields.List(fields.String(), allow_none=True)
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked = fields.Boolean()


class ApiKeyCreatedSchema(Schema):
    """The one response that carries the raw key."""

    id = fields.String()
    key = fields.String(metadata={"example": "sm_live_xyz..."})
    key_prefix = fields.String()
    name = fields.String()
    scope = fields.String()
    pools = fields.List(fields.String(), allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    warning = fields.String()
