"""/auth: sign-up, email verification, login, token refresh, logout, and who-am-I.

The public endpoints are rate limited twice: per account (the email, or the
refresh token's user, in the body) with ``AUTH_RATE_LIMIT``, and per client IP
with the looser ``AUTH_IP_RATE_LIMIT``, so guessing one account's password
stops early while a shared office IP still works.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import jwt as pyjwt
from flask import current_app, g, request
from flask.views import MethodView
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_limiter.util import get_remote_address

from orchestrator.api import Blueprint
from orchestrator.config import DEFAULT_AUTH_IP_RATE_LIMIT, DEFAULT_AUTH_RATE_LIMIT
from orchestrator.extensions import limiter
from orchestrator.models import Scope
from orchestrator.schemas.auth import (
    CodeSentSchema,
    LoginSchema,
    LogoutSchema,
    MeSchema,
    PasswordChangedSchema,
    PasswordResetConfirmSchema,
    PasswordResetSchema,
    RefreshSchema,
    RegisteredSchema,
    RegisterSchema,
    ResendCodeSchema,
    ResetSentSchema,
    TokenPairSchema,
    VerifiedSchema,
    VerifyEmailSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import accounts, signup

MAX_EMAIL_KEY = 320
RATE_LIMIT_MESSAGE = "Too many attempts; wait before trying again (see Retry-After)."
BEARER = [{"bearerAuth": []}]

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint("auth", __name__, url_prefix="/auth",
                description="Accounts, email verification and JWT sessions")


# -- rate limits -------------------------------------------------------------------------

def _account_limit() -> str:
    return current_app.config.get("AUTH_RATE_LIMIT") or DEFAULT_AUTH_RATE_LIMIT


def _ip_limit() -> str:
    return current_app.config.get("AUTH_IP_RATE_LIMIT") or DEFAULT_AUTH_IP_RATE_LIMIT


def account_key() -> str:
    """The account a public auth request is about: its email, or its refresh token's user.

    A body naming no account is counted against the client IP instead.
    """
    body = request.get_json(force=True, silent=True)
    body = body if isinstance(body, dict) else {}
    email = body.get("email")
    if isinstance(email, str) and email.strip():
        return "account:" + hashed(accounts.normalise_email(email[:MAX_EMAIL_KEY]))
    token = body.get("refresh_token")
    if isinstance(token, str) and token:
        try:
            # Verified signature, so nobody can spend another user's budget with a forged sub.
            return "account:" + hashed(str(decode_token(token, allow_expired=True)["sub"]))
        except (pyjwt.InvalidTokenError, JWTExtendedException, ValueError, KeyError):
            pass
    return "anonymous:" + hashed(get_remote_address() or "-")


def hashed(text: str) -> str:
    """A fixed-size rate-limit key: what the client sent never becomes a Redis key."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def auth_rate_limits(view: F) -> F:
    """Limit ``view`` per account (``AUTH_RATE_LIMIT``) and per IP (``AUTH_IP_RATE_LIMIT``)."""
    per_ip = limiter.limit(_ip_limit, key_func=get_remote_address,
                           error_message=RATE_LIMIT_MESSAGE)
    per_account = limiter.limit(_account_limit, key_func=account_key,
                                error_message=RATE_LIMIT_MESSAGE)
    return per_ip(per_account(view))


# -- endpoints ---------------------------------------------------------------------------

@blp.route("/register")
class Register(MethodView):
    @blp.arguments(RegisterSchema)
    @blp.response(201, RegisteredSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Create an account and its tenant

        Mails a 6-digit code (valid 15 minutes) to confirm the address; log in
        after POST /auth/verify-email. Passwords need 12+ characters. The
        answer is the same whether or not the email already has an account;
        unverified sign-ups expire after 7 days.
        """
        return signup.register(args["email"], args["password"], args["tenant_name"])


@blp.route("/verify-email")
class VerifyEmail(MethodView):
    @blp.arguments(VerifyEmailSchema)
    @blp.response(200, VerifiedSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Verify an email address with the 6-digit code

        Codes are single-use and void after 5 wrong tries; get a new one with
        POST /auth/resend-code.
        """
        return accounts.verify_email(args["email"], args["code"])


@blp.route("/resend-code")
class ResendCode(MethodView):
    @blp.arguments(ResendCodeSchema)
    @blp.response(202, CodeSentSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Mail a new verification code (older codes stop working)

        Always 202, whether or not the address has an account.
        """
        accounts.resend_code(args["email"])
        return {}


@blp.route("/password-reset")
class PasswordReset(MethodView):
    @blp.arguments(PasswordResetSchema)
    @blp.response(202, ResetSentSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Mail a password reset code (always 202, whether or not the address has an account)"""
        signup.request_password_reset(args["email"])
        return {}


@blp.route("/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    @blp.arguments(PasswordResetConfirmSchema)
    @blp.response(200, PasswordChangedSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Set a new password with the mailed code; every session of the account ends"""
        signup.confirm_password_reset(args["email"], args["code"], args["password"])
        return {}


@blp.route("/login")
class Login(MethodView):
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Log in: an access token (15 min) and a refresh token (7 days)"""
        return accounts.login(args["email"], args["password"])


@blp.route("/refresh")
class Refresh(MethodView):
    @blp.arguments(RefreshSchema)
    @blp.response(200, TokenPairSchema)
    @auth_rate_limits
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Trade a refresh token for a new pair

        Refresh tokens are single-use: presenting one twice signs the whole
        session out.
        """
        return accounts.refresh(args["refresh_token"])


@blp.route("/logout")
class Logout(MethodView):
    @blp.arguments(LogoutSchema)
    @blp.response(204)
    @blp.doc(security=BEARER)
    @require_scope(Scope.READ)
    def post(self, args: dict[str, Any]) -> None:
        """End this session: the access token and its refresh tokens stop working"""
        accounts.logout(g.get("jwt_claims"), args["refresh_token"])


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    @blp.doc(security=BEARER)
    @require_scope()
    def get(self) -> dict[str, Any]:
        """Who am I: user, tenant and the scope of this credential (any scope)"""
        return accounts.describe(current_principal())
