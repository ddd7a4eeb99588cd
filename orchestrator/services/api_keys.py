"""API keys: minting ``sm_live_`` keys (shown once), listing and revoking them.

Only ``security.hash_api_key(raw)`` is stored; ``security`` resolves a
presented key to its principal and refuses revoked or expired ones.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from orchestrator.errors import Forbidden, NotFound, ValidationFailed
from orchestrator.extensions import db
from orchestrator.key_cache import API_KEYS_CHANGED
from orchestrator.models import ApiKey, Scope, User, utcnow
from orchestrator.security import API_KEY_PREFIX, SCOPE_GRANTS, Principal, hash_api_key
from orchestrator.services import outbox

KEY_PREFIX_LENGTH = 12
KEY_RANDOM_BYTES = 32
MAX_EXPIRES_DAYS = 3650
DEFAULT_SCOPE = Scope.OPERATOR
CREATED_WARNING = "Store this key securely. It will not be shown again."


def generate_raw_key() -> str:
    """``sm_live_`` and 256 random bits, url-safe."""
    return API_KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def parse_scope(value: str | Scope | None) -> Scope:
    """A ``Scope`` from its name; 422 naming ``scope`` for anything else."""
    if value is None:
        return DEFAULT_SCOPE
    try:
        return Scope(value)
    except ValueError:
        choices = ", ".join(s.value for s in Scope)
        raise ValidationFailed("Unknown scope.", details={
            "fields": {"scope": [f"Must be one of: {choices}."]}}) from None


def create_api_key(owner: User, name: str, *, scope: str | Scope | None = None,
                   expires_days: int | None = None,
                   creator_scope: Scope | None = None) -> tuple[ApiKey, str]:
    """Mint a key for ``owner`` in the owner's tenant and return it with the raw key.

    The raw key exists only in the return value.

    :param creator_scope: the scope of the credential asking; a key cannot get
        more than its creator has (``None``: the CLI, an operator of the instance).
    """
    wanted = parse_scope(scope)
    if creator_scope is not None and wanted not in SCOPE_GRANTS[creator_scope]:
        raise Forbidden(f"A '{creator_scope.value}' credential cannot create a "
                        f"'{wanted.value}' key.", error_code="insufficient_scope")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise ValidationFailed("Invalid expiry.", details={
            "fields": {"expires_days": [f"Must be between 1 and {MAX_EXPIRES_DAYS}."]}})
    raw = generate_raw_key()
    now = utcnow()
    key = ApiKey(
        tenant_id=owner.tenant_id, user_id=owner.id, name=name.strip(),
        key_prefix=raw[:KEY_PREFIX_LENGTH], key_hash=hash_api_key(raw), scope=wanted.value,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(key)
    db.session.commit()
    return key, raw


def create_api_key_for(principal: Principal, name: str, scope: str | None = None,
                       expires_days: int | None = None) -> dict[str, Any]:
    """Mint a key owned by the calling user; the answer holds the raw key and a warning."""
    owner = db.session.get(User, principal.user_id)
    if owner is None:
        raise NotFound("The user of this credential no longer exists.")
    key, raw = create_api_key(owner, name, scope=scope, expires_days=expires_days,
                              creator_scope=principal.scope)
    return {"id": key.id, "key": raw, "key_prefix": key.key_prefix, "name": key.name,
            "scope": key.scope, "created_at": key.created_at, "expires_at": key.expires_at,
            "warning": CREATED_WARNING}


def list_api_keys() -> list[ApiKey]:
    """The current tenant's keys, newest first (revoked ones included, flagged)."""
    return list(db.session.execute(
        db.select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    ).scalars())


def get_api_key(key_id: str) -> ApiKey:
    """One of the current tenant's keys; another tenant's key is as missing as none."""
    key = db.session.execute(db.select(ApiKey).where(ApiKey.id == key_id)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"No API key with id '{key_id}'.", error_code="api_key_not_found")
    return key


def revoke_api_key(key_id: str) -> ApiKey:
    """Revoke a key; the next request made with it is refused. Revoking twice is harmless."""
    key = get_api_key(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        outbox.emit(API_KEYS_CHANGED, {"key_id": key.id})
        db.session.commit()
    return key
