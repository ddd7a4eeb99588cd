"""Webhook signatures: each tenant's signing secret, and how a payload is signed.

``X-ScriptMesh-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
with ``X-ScriptMesh-Timestamp: <unix seconds>``. A receiver recomputes the
HMAC over the raw body, compares in constant time and rejects old timestamps
(see ``verify_signature``, which the README's example mirrors).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime

import sqlalchemy as sa

from orchestrator.errors import Conflict
from orchestrator.extensions import db
from orchestrator.models import WebhookSecret, utcnow
from orchestrator.services.crypto import decrypt_secret, encrypt_secret

SECRET_PREFIX = "whsec_"
TIMESTAMP_HEADER = "X-ScriptMesh-Timestamp"
SIGNATURE_HEADER = "X-ScriptMesh-Signature"
#: A receiver should refuse signatures older than this (replay protection).
DEFAULT_TOLERANCE_SECONDS = 300


def secret_aad(tenant_id: str) -> str:
    """The associated data binding a stored signing secret to its tenant."""
    return f"webhook-signing-secret:{tenant_id}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does: recompute, compare in constant time, check the age."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    """Content type, timestamp and signature headers for ``body``."""
    timestamp = str(int(time.time()))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body)}


def _find(tenant_id: str) -> WebhookSecret | None:
    return db.session.execute(
        db.select(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id)
    ).scalar_one_or_none()


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_info(tenant_id: str) -> dict[str, object]:
    """Whether the tenant has a signing secret, and when it was made; never the secret."""
    row = _find(tenant_id)
    return {"configured": row is not None, "created_at": row.created_at if row else None,
            "rotated_at": row.rotated_at if row else None}


def create_secret(tenant_id: str) -> dict[str, object]:
    """Create the tenant's signing secret and return it: the only time it is shown."""
    if _find(tenant_id) is not None:
        raise Conflict("A webhook signing secret already exists; rotate it to get a new one.",
                       error_code="webhook_secret_exists")
    raw = _new_secret()
    row = WebhookSecret(tenant_id=tenant_id, secret=encrypt_secret(raw, secret_aad(tenant_id)))
    db.session.add(row)
    db.session.commit()
    return {"secret": raw, "created_at": row.created_at, "rotated_at": None}


def rotate_secret(tenant_id: str) -> dict[str, object]:
    """Replace (or create) the tenant's signing secret; the new one is returned once."""
    row = _find(tenant_id)
    raw = _new_secret()
    now: datetime = utcnow()
    if row is None:
        row = WebhookSecret(tenant_id=tenant_id, created_at=now)
        db.session.add(row)
    else:
        row.rotated_at = now
    row.secret = encrypt_secret(raw, secret_aad(tenant_id))
    db.session.commit()
    return {"secret": raw, "created_at": row.created_at, "rotated_at": row.rotated_at}


def signing_secret(tenant_id: str) -> str:
    """The tenant's signing secret for sending, created (unseen) on first need.

    A tenant that never asked for its secret still gets signed deliveries; it
    can rotate to learn a secret at any time.
    """
    row = _find(tenant_id)
    if row is None:
        row = WebhookSecret(tenant_id=tenant_id,
                            secret=encrypt_secret(_new_secret(), secret_aad(tenant_id)))
        db.session.add(row)
        try:
            db.session.commit()
        except sa.exc.IntegrityError:  # another worker made it first
            db.session.rollback()
            row = _find(tenant_id)
    return decrypt_secret(row.secret, secret_aad(tenant_id))
