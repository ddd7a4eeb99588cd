"""API keys: minting ``sm_live_`` keys (shown once), listing and revoking them.

Only ``security.hash_api_key(raw)`` is stored; ``security`` resolves a
presented key to its principal and refuses revoked or expired ones.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

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
                   expires_days: int | None = None, creator_scope: Scope | None = None,
                   pools: list[str] | None = None) -> tuple[ApiKey, str]:
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
    check_pools(wanted, pools)
    raw = generate_raw_key()
    now = utcnow()
    key = ApiKey(
        tenant_id=owner.tenant_id, user_id=owner.id, name=name.strip(),
        key_prefix=raw[:KEY_PREFIX_LENGTH], key_hash=hash_api_key(raw), scope=wanted.value,
        created_at=now, pools=sorted(set(pools)) if pools else None,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(key)
    db.session.commit()
    return key, raw


def check_pools(scope: Scope, pools: list[str] | None) -> None:
    """Pools are granted to agent keys only (422 otherwise)."""
    if pools and scope is not Scope.AGENT:
        raise ValidationFailed("Only agent keys serve pools.", details={
            "fields": {"pools": ["Give pools only with scope 'agent'."]}})


def create_api_key_for(principal: Principal, name: str, scope: str | None = None,
                       expires_days: int | None = None,
                       pools: list[str] | None = None) -> dict[str, Any]:
    """Mint a key owned by the calling user; the answer holds the raw key and a warning."""
    owner = db.session.get(User, principal.user_id)
    if owner is None:
        raise NotFound("The user of this credential no longer exists.")
    key, raw = create_api_key(owner, name, scope=scope, expires_days=expires_days,
                              creator_scope=principal.scope, pools=pools)
    return {"id": key.id, "key": raw, "key_prefix": key.key_prefix, "name": key.name,
            "scope": key.scope, "pools": key.pools, "created_at": key.created_at,
            "expires_at": key.expires_at, "warning": CREATED_WARNING}


def update_api_key(key_id: str, data: dict[str, Any]) -> ApiKey:
    """Grant an agent key its pools and/or rebind its agent name (admin only, at the edge).

    Rebinding takes the name from any other key of the tenant bound to it, so
    exactly one key acts as an agent name.
    """
    if not data:
        raise ValidationFailed("Give at least one of pools and agent_name to change.",
                               error_code="empty_update")
    key = get_api_key(key_id)
    if key.scope != Scope.AGENT.value:
        raise ValidationFailed("Only agent keys have pools and an agent name.",
                               details={"fields": {name: ["Only for scope 'agent'."]
                                                   for name in data}})
    if "pools" in data:
        key.pools = sorted(set(data["pools"])) or None
    if "agent_name" in data:
        name = data["agent_name"]
        if name is not None:
            db.session.execute(
                sa.update(ApiKey).where(ApiKey.agent_name == name, ApiKey.id != key.id)
                .values(agent_name=None).execution_options(synchronize_session=False))
        key.agent_name = name
    outbox.emit(API_KEYS_CHANGED, {"key_id": key.id})  # the old binding leaves every cache
    db.session.commit()
    return key


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
