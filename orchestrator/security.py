"""Who is calling: bearer JWTs and ``sm_live_`` API keys resolve to a ``Principal``.

Every endpoint is wrapped by ``require_scope``; it authenticates the request,
stores the principal and its tenant on ``flask.g`` (which turns on tenant
filtering, see ``orchestrator.tenancy``) and checks the scope.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import jwt as pyjwt
import redis
import sqlalchemy as sa
from flask import current_app, g, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException

from orchestrator import key_cache
from orchestrator.errors import Forbidden, TokenExpired, Unauthorized
from orchestrator.extensions import db, redis_store
from orchestrator.models import ApiKey, RevokedToken, Scope, User, utcnow

log = logging.getLogger(__name__)

API_KEY_PREFIX = "sm_live_"
REVOKED_JTI_KEY = "scriptmesh:revoked-jti:{jti}"
LAST_USED_KEY = "scriptmesh:api-key-used:{key_id}"
LAST_USED_RESOLUTION = timedelta(seconds=60)

#: Which scopes each principal scope satisfies.
SCOPE_GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.ADMIN: frozenset(Scope),
    Scope.OPERATOR: frozenset({Scope.OPERATOR, Scope.READ}),
    Scope.READ: frozenset({Scope.READ}),
    Scope.AGENT: frozenset({Scope.AGENT}),
}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    tenant_id: str
    user_id: str
    scope: Scope
    is_admin: bool = False
    api_key_id: str | None = None
    #: For agent-scope keys: the agent name the key is bound to (None until bound).
    agent_name: str | None = None

    def allows(self, needed: Scope) -> bool:
        return needed in SCOPE_GRANTS[self.scope]


def hash_api_key(raw_key: str) -> str:
    """Keyed hash of a raw key: HMAC-SHA256 under the app's secret key.

    Keys carry 192 random bits, so a fast keyed hash is safe and keeps every
    request cheap (bcrypt would cost ~100 ms per call).
    """
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"api-key:" + raw_key.encode(), hashlib.sha256).hexdigest()


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'.")
    return token.strip()


def authenticate() -> Principal:
    """Resolve the request's bearer token, or raise 401."""
    token = bearer_token()
    if token.startswith(API_KEY_PREFIX):
        return _principal_from_api_key(token)
    return _principal_from_jwt(token)


def _principal_from_api_key(raw_key: str) -> Principal:
    """The key's principal: from the key cache while its epoch holds, else the database."""
    key_hash = hash_api_key(raw_key)
    cache = key_cache.key_cache()
    epoch = key_cache.current_epoch()
    now = utcnow()
    cached = cache.get(key_hash, epoch)
    if cached is None:
        principal, expires_at, last_used_at = _load_api_key(key_hash)
        cached = key_cache.fresh_entry(principal, expires_at, last_used_at, epoch)
        if cached is not None:
            cache.put(key_hash, cached)
    else:
        principal, expires_at, last_used_at = (cached.principal, cached.expires_at,
                                               cached.last_used_at)
    if expires_at is not None and expires_at <= now:
        raise TokenExpired("This API key has expired.", error_code="api_key_expired")
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        record_key_use(principal.api_key_id, now)
        cache.touched(key_hash, now)
    return principal


def _load_api_key(key_hash: str) -> tuple[Principal, datetime | None, datetime | None]:
    key = db.session.execute(
        db.select(ApiKey).where(ApiKey.key_hash == key_hash)
        .execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if key is None:
        raise Unauthorized("Invalid API key.")
    if key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.", error_code="api_key_revoked")
    # Only an admin-scope key can carry instance-admin rights: skip the user row otherwise
    # (agent keys authenticate every poll, heartbeat and upload).
    is_admin = key.scope == Scope.ADMIN.value and bool(
        getattr(db.session.get(User, key.user_id), "is_admin", False))
    principal = Principal(
        tenant_id=key.tenant_id, user_id=key.user_id, scope=Scope(key.scope),
        is_admin=is_admin, api_key_id=key.id, agent_name=key.agent_name,
    )
    return principal, key.expires_at, key.last_used_at


def record_key_use(key_id: str, now: datetime) -> None:
    """Stamp ``last_used_at`` at most once per ``LAST_USED_RESOLUTION`` across all replicas.

    A fleet of agents sharing one key would otherwise all race to update the
    same row when the stamp goes stale; a Redis SET NX lets exactly one write.
    """
    seconds = int(LAST_USED_RESOLUTION.total_seconds())
    try:
        won = redis_store.connection.set(LAST_USED_KEY.format(key_id=key_id), b"1",
                                         nx=True, ex=seconds)
    except redis.RedisError:
        return  # a bookkeeping stamp never fails the request
    if won:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id == key_id)
                           .values(last_used_at=now).execution_options(all_tenants=True))
        db.session.commit()


def decode_access_token(token: str) -> dict[str, Any]:
    """Decode and check an access JWT; 401 with a clear reason otherwise."""
    try:
        claims = decode_token(token)
    except pyjwt.ExpiredSignatureError as exc:
        raise TokenExpired("The access token has expired; refresh it at /auth/refresh.") from exc
    except (pyjwt.InvalidTokenError, JWTExtendedException, ValueError) as exc:
        raise Unauthorized("The bearer token is not valid.", error_code="invalid_token") from exc
    if claims.get("type") != "access":
        raise Unauthorized("Use an access token here, not a refresh token.",
                           error_code="invalid_token")
    if is_jti_revoked(claims["jti"]):
        raise Unauthorized("This token has been revoked.", error_code="token_revoked")
    return claims


def _principal_from_jwt(token: str) -> Principal:
    claims = decode_access_token(token)
    user = db.session.execute(
        db.select(User).where(User.id == claims["sub"]).execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if user is None:
        raise Unauthorized("The user of this token no longer exists.", error_code="invalid_token")
    g.jwt_claims = claims
    return Principal(tenant_id=user.tenant_id, user_id=user.id, scope=Scope.ADMIN,
                     is_admin=user.is_admin)


def revoke_jti(jti: str, ttl: timedelta) -> None:
    """Revoke a JWT id until it would have expired anyway: a database row (the record,
    which survives a Redis flush) and a Redis key (the cache). The caller commits."""
    seconds = max(1, int(ttl.total_seconds()))
    if db.session.get(RevokedToken, jti) is None:
        db.session.add(RevokedToken(jti=jti, expires_at=utcnow() + timedelta(seconds=seconds)))
    try:
        redis_store.connection.set(REVOKED_JTI_KEY.format(jti=jti), b"1", ex=seconds)
    except redis.RedisError:
        log.warning("revoked token not cached in Redis; the database still has it")


def is_jti_revoked(jti: str) -> bool:
    """Redis answers for recent revocations; the database answers for the rest."""
    try:
        if redis_store.connection.exists(REVOKED_JTI_KEY.format(jti=jti)):
            return True
    except redis.RedisError:
        pass
    return db.session.get(RevokedToken, jti) is not None


def purge_expired_revocations(now: datetime | None = None) -> int:
    """Delete revocations of tokens that have expired anyway (maintenance may call it)."""
    result = db.session.execute(
        sa.delete(RevokedToken).where(RevokedToken.expires_at < (now or utcnow())))
    return result.rowcount or 0


def current_principal() -> Principal:
    """The principal ``require_scope`` stored for this request."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized()
    return principal


def require_scope(*needed: Scope | str) -> Callable[[F], F]:
    """Authenticate the request and require one of ``needed`` (see ``SCOPE_GRANTS``).

    With no scope given, any valid credential passes (agent keys included).
    """
    needed_scopes = tuple(Scope(s) for s in needed)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if "principal" not in g:  # the request guard usually checked already
                check_scopes(needed_scopes)
            return view(*args, **kwargs)

        # Read by the request guard, which authenticates before the body is parsed.
        wrapper.required_scopes = needed_scopes  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def check_scopes(needed_scopes: tuple[Scope, ...]) -> Principal:
    """Authenticate the request, require one of ``needed_scopes``, remember the principal."""
    principal = authenticate()
    if needed_scopes and not any(principal.allows(s) for s in needed_scopes):
        wanted = " or ".join(f"'{s.value}'" for s in needed_scopes)
        raise Forbidden(
            f"This API key has scope '{principal.scope.value}'; "
            f"this endpoint needs {wanted}.",
            error_code="insufficient_scope",
        )
    g.principal = principal
    g.tenant_id = principal.tenant_id
    return principal


def require_instance_admin() -> Principal:
    principal = current_principal()
    if not principal.is_admin:
        raise Forbidden("Only an instance administrator may do this.")
    return principal
