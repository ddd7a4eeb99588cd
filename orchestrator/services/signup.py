"""Sign-up without account enumeration or squatting, unverified sign-ups that expire, and
password reset by an emailed code.

``register`` answers the same whether the email is new, waiting for
verification or taken: a new address gets an account and a code; an
unverified one gets the new password and a fresh code (whoever proves the
mailbox owns the account, so nobody can squat an address); a verified one
gets a mail pointing to the password reset. Unverified sign-ups older than
``UNVERIFIED_TTL`` are deleted (with their tenant when it has no other user).
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.errors import BadRequest
from orchestrator.extensions import db
from orchestrator.models import RefreshToken, Tenant, User, utcnow
from orchestrator.services import accounts, mail

log = logging.getLogger(__name__)

UNVERIFIED_TTL = timedelta(days=7)
RESET_LIFETIME_MINUTES = int(accounts.CODE_LIFETIME.total_seconds() // 60)


def register(email: str, password: str, tenant_name: str | None = None) -> dict[str, object]:
    """Sign up (or refresh a pending sign-up); the same answer for every email."""
    email = accounts.normalise_email(email)
    accounts.check_password_rules(email, password)
    user = accounts.find_user_by_email(email)
    if user is not None and user.email_verified_at is None and _expired(user):
        _delete_unverified(user)
        user = None
    if user is None:
        accounts.register(email, password, tenant_name)
    elif user.email_verified_at is None:
        user.password_hash = accounts.hash_password(password)
        code = accounts.issue_email_code(user)
        db.session.commit()
        accounts.send_code_mail(user, code)
    else:
        _send_existing_account_mail(user)
    return {"email": email, "email_verified": False}


def _expired(user: User, now: datetime | None = None) -> bool:
    created = getattr(user, "created_at", None)
    return created is not None and created < (now or utcnow()) - UNVERIFIED_TTL


def _delete_unverified(user: User) -> None:
    tenant_id = user.tenant_id
    db.session.delete(user)
    db.session.flush()
    others = db.session.execute(
        db.select(sa.func.count()).select_from(User).where(User.tenant_id == tenant_id)
        .execution_options(all_tenants=True)).scalar_one()
    if not others:
        tenant = db.session.get(Tenant, tenant_id)
        if tenant is not None:
            db.session.delete(tenant)
    db.session.flush()


def expire_unverified_signups(now: datetime | None = None) -> int:
    """Delete every unverified sign-up older than ``UNVERIFIED_TTL`` (maintenance)."""
    cutoff = (now or utcnow()) - UNVERIFIED_TTL
    stale = db.session.execute(
        db.select(User).where(User.email_verified_at.is_(None), User.created_at < cutoff)
        .execution_options(all_tenants=True)).scalars().all()
    for user in stale:
        _delete_unverified(user)
    db.session.commit()
    return len(stale)


def _send_existing_account_mail(user: User) -> None:
    text = ("Someone (maybe you) tried to sign up to ScriptMesh with this address, which "
            "already has an account.\n\nForgot your password? Ask for a reset code with "
            "POST /auth/password-reset {email}.\nIf it was not you, ignore this message.\n")
    try:
        mail.send(mail.build_message(user.email, "Your ScriptMesh account", text))
    except mail.MailError as exc:
        log.error("account notice to %s not sent: %s", user.email, exc)


def request_password_reset(email: str) -> None:
    """Mail a reset code to a verified account; silently nothing for any other address."""
    user = accounts.find_user_by_email(email)
    if user is None or user.email_verified_at is None:
        return
    code = accounts.issue_email_code(user)
    db.session.commit()
    text = (f"Your ScriptMesh password reset code is {code}.\n\nIt expires in "
            f"{RESET_LIFETIME_MINUTES} minutes. Enter it with POST /auth/password-reset/confirm "
            "{email, code, password}.\nIf you did not ask for it, ignore this message.\n")
    try:
        mail.send(mail.build_message(user.email, "Your ScriptMesh password reset code", text),
                  dev_hint=f"reset code {code}")
    except mail.MailError as exc:
        log.error("reset mail to %s not sent: %s", user.email, exc)


def confirm_password_reset(email: str, code: str, password: str) -> None:
    """Set a new password with a mailed code; every session of the user ends."""
    user = accounts.find_user_by_email(email)
    record = accounts._open_code(user.id) if user is not None else None  # noqa: SLF001
    now = utcnow()
    if user is None or record is None or record.expires_at <= now:
        raise BadRequest(accounts.INVALID_CODE, error_code="invalid_code")
    if not hmac.compare_digest(record.code_hash,
                               accounts._hash_code(user.id, code.strip())):  # noqa: SLF001
        record.failed_attempts += 1
        if record.failed_attempts >= accounts.MAX_CODE_ATTEMPTS:
            record.voided_at = now
        db.session.commit()
        raise BadRequest(accounts.INVALID_CODE, error_code="invalid_code")
    accounts.check_password_rules(user.email, password)
    record.used_at = now
    user.password_hash = accounts.hash_password(password)
    db.session.execute(
        sa.update(RefreshToken).where(RefreshToken.user_id == user.id,
                                      RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now))
    db.session.commit()
