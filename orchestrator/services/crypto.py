"""Secrets at rest: AES-256-GCM with a fresh 96-bit nonce per secret and a key id.

An encrypted secret is the JSON-friendly ``{"kid", "nonce", "ct"}``; ``kid``
names the key in ``app.config["ENCRYPTION_KEYS"]`` (the first key encrypts,
every listed key decrypts), so ``scriptmesh keys rotate`` can re-encrypt
under a new key while old rows stay readable. The associated data binds a
ciphertext to its owner (an integration id and field name), so a ciphertext
copied to another row or field does not decrypt.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

NONCE_BYTES = 12

Envelope = dict[str, str]


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted (unknown key id, wrong key, or tampered)."""


def _keys() -> dict[str, bytes]:
    return current_app.config["ENCRYPTION_KEYS"]


def current_key_id() -> str:
    """The id of the key new secrets are encrypted with (the first configured)."""
    return next(iter(_keys()))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def encrypt_secret(plaintext: str, associated_data: str) -> Envelope:
    """Encrypt ``plaintext`` under the current key, bound to ``associated_data``."""
    kid = current_key_id()
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(_keys()[kid]).encrypt(nonce, plaintext.encode(), associated_data.encode())
    return {"kid": kid, "nonce": _b64(nonce), "ct": _b64(ciphertext)}


def decrypt_secret(envelope: Envelope, associated_data: str) -> str:
    """Decrypt an envelope made by ``encrypt_secret`` with the same ``associated_data``."""
    key = _keys().get(envelope.get("kid", ""))
    if key is None:
        raise SecretUnreadable(f"secret encrypted with unknown key id {envelope.get('kid')!r}")
    try:
        nonce = base64.urlsafe_b64decode(envelope["nonce"])
        ciphertext = base64.urlsafe_b64decode(envelope["ct"])
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data.encode()).decode()
    except (InvalidTag, KeyError, ValueError) as exc:
        raise SecretUnreadable("secret does not decrypt (wrong key or tampered)") from exc


def reencrypt_secret(envelope: Envelope, associated_data: str) -> Envelope | None:
    """The envelope under the current key, or None when it already uses it."""
    if envelope.get("kid") == current_key_id():
        return None
    return encrypt_secret(decrypt_secret(envelope, associated_data), associated_data)
