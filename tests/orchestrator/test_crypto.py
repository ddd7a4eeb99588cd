"""Secrets at rest: AES-256-GCM envelopes, associated data, and key rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator import create_app
from orchestrator.cli import main
from orchestrator.extensions import db
from orchestrator.models import Integration, WebhookSecret
from orchestrator.services import signing
from orchestrator.services.crypto import (
    SecretUnreadable,
    decrypt_secret,
    encrypt_secret,
    reencrypt_secret,
)
from orchestrator.services.integrations.manage import decrypted_secrets
from tests.conftest import TEST_SECRETS, base_config

NEW_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_round_trip_with_fresh_nonces(app: Flask) -> None:
    with app.app_context():
        first = encrypt_secret("hunter2", "integration:int_1:api_key")
        second = encrypt_secret("hunter2", "integration:int_1:api_key")
        assert first["kid"] == "k1"
        assert len(base64.urlsafe_b64decode(first["nonce"])) == 12
        assert first["nonce"] != second["nonce"] and first["ct"] != second["ct"]
        assert "hunter2" not in repr(first)
        assert decrypt_secret(first, "integration:int_1:api_key") == "hunter2"


def test_ciphertext_is_bound_to_its_owner_and_tamper_evident(app: Flask) -> None:
    with app.app_context():
        envelope = encrypt_secret("hunter2", "integration:int_1:api_key")
        with pytest.raises(SecretUnreadable):
            decrypt_secret(envelope, "integration:int_2:api_key")
        tampered = dict(envelope, ct=envelope["ct"][:-4] + ("AAAA" if envelope["ct"][-4:]
                                                          != "AAAA" else "BBBB"))
        with pytest.raises(SecretUnreadable):
            decrypt_secret(tampered, "integration:int_1:api_key")
        with pytest.raises(SecretUnreadable, match="unknown key id"):
            decrypt_secret(dict(envelope, kid="gone"), "integration:int_1:api_key")
        assert reencrypt_secret(envelope, "integration:int_1:api_key") is None


def app_with_keys(database_url: str, redis_url: str, tmp_path: Path, keys: str) -> Flask:
    return create_app({**base_config(database_url, redis_url, tmp_path / keys[:2]),
                       "ENCRYPTION_KEY": keys})


def test_rotation_keeps_every_secret_readable(app: Flask, client: FlaskClient,
                                              make_user: Any, database_url: str,
                                              redis_url: str, tmp_path: Path) -> None:
    user = make_user()
    headers = user["headers"]
    for type_, config in (("slack", {"webhook_url": "https://hooks.example/one"}),
                          ("pagerduty", {"routing_key": "rk-secret"})):
        response = client.post("/integrations", headers=headers,
                               json={"type": type_, "name": type_, "config": config})
        assert response.status_code == 201
    secret = client.post("/settings/webhook-secret", headers=headers).json["secret"]
    old = TEST_SECRETS["ENCRYPTION_KEY"]

    only_new = app_with_keys(database_url, redis_url, tmp_path, f"k2:{NEW_KEY}")
    with only_new.app_context():
        row = db.session.execute(db.select(Integration)).scalars().first()
        with pytest.raises(SecretUnreadable):
            decrypted_secrets(row)

    both = app_with_keys(database_url, redis_url, tmp_path, f"k2:{NEW_KEY},{old}")
    result = both.test_cli_runner().invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 secret(s) under key 'k2'" in result.output
    again = both.test_cli_runner().invoke(main, ["keys", "rotate"])
    assert "re-encrypted 0 secret(s)" in again.output
    status = both.test_cli_runner().invoke(main, ["keys", "status"])
    assert "k2: 3 secret(s)" in status.output and "k1:" not in status.output

    with only_new.app_context():
        rows = db.session.execute(db.select(Integration).order_by(Integration.type)).scalars()
        readable = {row.type: decrypted_secrets(row) for row in rows}
        assert readable == {"pagerduty": {"routing_key": "rk-secret"},
                            "slack": {"webhook_url": "https://hooks.example/one"}}
        assert signing.signing_secret(user["tenant_id"]) == secret
        stored = db.session.execute(db.select(WebhookSecret)).scalar_one()
        assert stored.secret["kid"] == "k2"
