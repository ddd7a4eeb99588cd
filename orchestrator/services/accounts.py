"""Accounts: sign-up with a tenant, email verification codes, and JWT sessions.

A session is one login: an access JWT (short) and a refresh JWT (long) that
rotates on every use. Each refresh token is a ``RefreshToken`` row; all rows
descending from one login share a ``family_id``, and presenting a rotated
token again revokes the family, since only a stolen copy would be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt as pyjwt
import sqlalchemy as sa
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException

from orchestrator.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    TokenExpired,
    Unauthorized,
    ValidationFailed,
)
from orchestrator.extensions import db
from orchestrator.models import EmailCode, RefreshToken, Tenant, User, utcnow
from orchestrator.security import Principal, revoke_jti
from orchestrator.services import mail

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=15)
MAX_CODE_ATTEMPTS = 5
DEFAULT_BCRYPT_ROUNDS = 12
#: Test apps hash with the cheapest cost so suites stay fast (set BCRYPT_ROUNDS to override).
TESTING_BCRYPT_ROUNDS = 4
#: Mail providers whose domain says nothing about the team: name the tenant after the user.
PERSONAL_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com",
    "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de",
    "mail.com", "yandex.com", "fastmail.com",
})

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_CODE = (
    "This verification code is not valid: it is wrong, expired, already used, or void "
    f"after {MAX_CODE_ATTEMPTS} wrong tries. Request a new one with POST /auth/resend-code "
    '{"email": "..."}.'
)


# -- passwords ---------------------------------------------------------------------------

def normalise_email(email: str) -> str:
    """Emails are compared stripped and lower-cased."""
    return email.strip().lower()


def check_password_rules(email: str, password: str) -> None:
    """Raise 422 naming ``password`` when it is too short or equals the email."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Must be at least {MIN_PASSWORD_LENGTH} characters long.")
    if password.strip().lower() == normalise_email(email):
        problems.append("Must not be the same as the email address.")
    if problems:
        raise ValidationFailed("The password is not acceptable.",
                               details={"fields": {"password": problems}})


def _bcrypt_input(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; a SHA-256 digest first lets every character count.
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password(password: str) -> str:
    config = current_app.config
    default = TESTING_BCRYPT_ROUNDS if config.get("TESTING") else DEFAULT_BCRYPT_ROUNDS
    rounds = int(config.get("BCRYPT_ROUNDS") or default)
    return bcrypt.hashpw(_bcrypt_input(password), bcrypt.gensalt(rounds)).decode()


def password_matches(password: str, password_hash: str) -> bool:
    return bcrypt.checkpw(_bcrypt_input(password), password_hash.encode())


# -- users and tenants -------------------------------------------------------------------

def default_tenant_name(email: str) -> str:
    """The email's domain, or its local part for personal mail providers."""
    local, _, domain = normalise_email(email).partition("@")
    return local if not domain or domain in PERSONAL_MAIL_DOMAINS else domain


def find_user_by_email(email: str) -> User | None:
    """The user with this (normalised) email in any tenant."""
    return db.session.execute(
        db.select(User).where(User.email == normalise_email(email))
        .execution_options(all_tenants=True)
    ).scalar_one_or_none()


def create_user(email: str, password: str, *, tenant_name: str | None = None,
                tenant_id: str | None = None, verified: bool = False,
                is_admin: bool = False) -> User:
    """Create a user, in tenant ``tenant_id`` or in a new tenant named ``tenant_name``.

    :raises ValidationFailed: the password breaks the rules.
    :raises Conflict: the email is taken.
    """
    email = normalise_email(email)
    check_password_rules(email, password)
    if find_user_by_email(email) is not None:
        raise Conflict("An account with this email already exists.",
                       error_code="email_taken")
    if tenant_id is None:
        tenant = Tenant(name=(tenant_name or "").strip() or default_tenant_name(email))
        db.session.add(tenant)
        db.session.flush()
        tenant_id = tenant.id
    user = User(tenant_id=tenant_id, email=email, password_hash=hash_password(password),
                is_admin=is_admin, email_verified_at=utcnow() if verified else None)
    db.session.add(user)
    try:
        db.session.flush()
    except sa.exc.IntegrityError as exc:  # a concurrent sign-up with the same email
        db.session.rollback()
        raise Conflict("An account with this email already exists.",
                       error_code="email_taken") from exc
    return user


def register(email: str, password: str, tenant_name: str | None = None) -> User:
    """Sign up: a new tenant, its owner (unverified), and a mailed verification code."""
    user = create_user(email, password, tenant_name=tenant_name)
    code = issue_email_code(user)
    db.session.commit()
    send_code_mail(user, code)
    return user


# -- email verification ------------------------------------------------------------------

def _hash_code(user_id: str, code: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, f"email-code:{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def issue_email_code(user: User) -> str:
    """Void the user's open codes and add a fresh one (the caller commits); return it."""
    now = utcnow()
    db.session.execute(
        sa.update(EmailCode)
        .where(EmailCode.user_id == user.id, EmailCode.used_at.is_(None),
               EmailCode.voided_at.is_(None))
        .values(voided_at=now)
    )
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    db.session.add(EmailCode(user_id=user.id, code_hash=_hash_code(user.id, code),
                             expires_at=now + CODE_LIFETIME))
    return code


def send_code_mail(user: User, code: str) -> bool:
    """Mail ``code`` to the user; a transport failure is logged, not raised (they may resend)."""
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    text = (
        f"Your ScriptMesh verification code is {code}.\n\n"
        f"It expires in {minutes} minutes. Enter it with POST /auth/verify-email.\n"
        "If you did not sign up, ignore this message.\n"
    )
    message = mail.build_message(user.email, "Your ScriptMesh verification code", text)
    try:
        mail.send(message, dev_hint=f"code {code}")
    except mail.MailError as exc:
        log.error("verification mail to %s not sent: %s", user.email, exc)
        return False
    return True


def _open_code(user_id: str) -> EmailCode | None:
    return db.session.execute(
        db.select(EmailCode)
        .where(EmailCode.user_id == user_id, EmailCode.used_at.is_(None),
               EmailCode.voided_at.is_(None))
        .order_by(EmailCode.id.desc()).limit(1)
    ).scalar_one_or_none()


def verify_email(email: str, code: str) -> User:
    """Mark the email verified when ``code`` is the user's open, unexpired code.

    Every failure, unknown emails included, gives the same answer. A wrong
    code counts against the code; the fifth wrong try voids it.
    """
    user = find_user_by_email(email)
    record = _open_code(user.id) if user is not None else None
    now = utcnow()
    if user is None or record is None or record.expires_at <= now:
        raise BadRequest(INVALID_CODE, error_code="invalid_code")
    if not hmac.compare_digest(record.code_hash, _hash_code(user.id, code.strip())):
        record.failed_attempts += 1
        if record.failed_attempts >= MAX_CODE_ATTEMPTS:
            record.voided_at = now
        db.session.commit()
        raise BadRequest(INVALID_CODE, error_code="invalid_code")
    record.used_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now
    db.session.commit()
    return user


def resend_code(email: str) -> None:
    """Send a new code to an unverified user; silently nothing for anyone else."""
    user = find_user_by_email(email)
    if user is None or user.email_verified_at is not None:
        return
    code = issue_email_code(user)
    db.session.commit()
    send_code_mail(user, code)


# -- sessions ----------------------------------------------------------------------------

def login(email: str, password: str) -> dict[str, Any]:
    """Check the credentials and start a session: a token pair in a new family."""
    user = find_user_by_email(email)
    if user is None:
        # Spend the same bcrypt time as for a real account: timing must not reveal emails.
        password_matches(password, _dummy_hash())
        raise Unauthorized(INVALID_CREDENTIALS, error_code="invalid_credentials")
    if not password_matches(password, user.password_hash):
        raise Unauthorized(INVALID_CREDENTIALS, error_code="invalid_credentials")
    if user.email_verified_at is None:
        raise Forbidden(
            "The email address is not verified: enter the 6-digit code we mailed with "
            "POST /auth/verify-email, or get a new one with POST /auth/resend-code.",
            error_code="email_not_verified",
        )
    return issue_tokens(user)


def _dummy_hash() -> str:
    cached = current_app.extensions.get("scriptmesh.dummy-password-hash")
    if cached is None:
        cached = hash_password(secrets.token_urlsafe(16))
        current_app.extensions["scriptmesh.dummy-password-hash"] = cached
    return cached


def issue_tokens(user: User, family_id: str | None = None) -> dict[str, Any]:
    """A new access/refresh pair for ``user``; the refresh token is recorded and committed."""
    family_id = family_id or secrets.token_hex(16)
    claims = {"fam": family_id}
    access = create_access_token(identity=user.id, additional_claims=claims)
    refresh = create_refresh_token(identity=user.id, additional_claims=claims)
    refresh_claims = decode_token(refresh)
    db.session.add(RefreshToken(
        jti=refresh_claims["jti"], user_id=user.id, family_id=family_id,
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    ))
    db.session.commit()
    expires_in = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
            "expires_in": expires_in}


def decode_refresh_token(token: str) -> dict[str, Any]:
    """Claims of a valid refresh JWT; 401 ``token_expired`` or ``invalid_token`` otherwise."""
    try:
        claims = decode_token(token)
    except pyjwt.ExpiredSignatureError as exc:
        raise TokenExpired("The refresh token has expired; log in again with POST /auth/login."
                           ) from exc
    except (pyjwt.InvalidTokenError, JWTExtendedException, ValueError) as exc:
        raise Unauthorized("The refresh token is not valid.", error_code="invalid_token") from exc
    if claims.get("type") != "refresh":
        raise Unauthorized("Send a refresh token here, not an access token.",
                           error_code="invalid_token")
    return claims


def refresh(token: str) -> dict[str, Any]:
    """Rotate: spend ``token`` and return a new pair in the same family.

    A token that was already spent means a copy is in someone else's hands:
    the whole family is revoked, the legitimate holder's newest token too.
    """
    claims = decode_refresh_token(token)
    record = db.session.get(RefreshToken, claims["jti"])
    if record is None or record.revoked_at is not None:
        raise Unauthorized("This refresh token has been revoked; log in again.",
                           error_code="token_revoked")
    spent = db.session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.jti == record.jti, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if spent != 1:
        revoke_family(record.family_id)
        db.session.commit()
        log.warning("refresh token reuse for user %s: session family revoked", record.user_id)
        raise Unauthorized("This refresh token was already used. As a precaution every token "
                           "of this session is revoked; log in again.",
                           error_code="refresh_token_reused")
    user = db.session.execute(
        db.select(User).where(User.id == record.user_id).execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if user is None:
        raise Unauthorized("The user of this token no longer exists.", error_code="invalid_token")
    return issue_tokens(user, family_id=record.family_id)


def revoke_family(family_id: str) -> None:
    """Revoke every refresh token of one session (the caller commits)."""
    db.session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def logout(access_claims: dict[str, Any] | None, refresh_token: str | None = None) -> None:
    """End the session of ``access_claims``: blocklist the access token, revoke its family.

    :param refresh_token: optional; its family is revoked too (it must be the same user's).
    :raises BadRequest: the caller used an API key, not a JWT session.
    """
    if access_claims is None:
        raise BadRequest("Logout ends a JWT session. Revoke an API key with "
                         "DELETE /auth/api-keys/{id}.", error_code="not_a_session")
    families = {access_claims.get("fam")}
    if refresh_token:
        claims = _claims_ignoring_expiry(refresh_token)
        if claims.get("sub") != access_claims["sub"]:
            raise BadRequest("This refresh token belongs to another user.",
                             error_code="invalid_token")
        families.add(claims.get("fam"))
    for family_id in families - {None}:
        revoke_family(family_id)
    remaining = datetime.fromtimestamp(access_claims["exp"], tz=UTC) - utcnow()
    revoke_jti(access_claims["jti"], remaining)
    db.session.commit()


def _claims_ignoring_expiry(token: str) -> dict[str, Any]:
    try:
        claims = decode_token(token, allow_expired=True)
    except (pyjwt.InvalidTokenError, JWTExtendedException, ValueError) as exc:
        raise BadRequest("The refresh token is not valid.", error_code="invalid_token") from exc
    if claims.get("type") != "refresh":
        raise BadRequest("refresh_token must be a refresh token.", error_code="invalid_token")
    return claims


def describe(principal: Principal) -> dict[str, Any]:
    """Who the caller is: user, tenant, and the scope of the credential used."""
    user = db.session.get(User, principal.user_id)
    tenant = db.session.get(Tenant, principal.tenant_id)
    if user is None or tenant is None:
        raise Unauthorized("The user of this credential no longer exists.",
                           error_code="invalid_token")
    return {"user_id": user.id, "email": user.email, "tenant_id": tenant.id,
            "tenant_name": tenant.name, "is_admin": principal.is_admin,
            "scope": principal.scope.value}
