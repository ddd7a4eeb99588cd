"""``scriptmesh dev``'s credentials: made once through the account services, then reused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from flask import Flask

from orchestrator.dev.credentials import CREDENTIALS_FILE, DEV_ADMIN_EMAIL, ensure_dev_credentials
from orchestrator.extensions import db
from orchestrator.models import ApiKey, User, utcnow
from orchestrator.services import accounts


def test_first_start_creates_an_admin_and_two_keys(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        credentials = ensure_dev_credentials(tmp_path)
        user = accounts.find_user_by_email(DEV_ADMIN_EMAIL)
        assert user is not None and user.is_admin and user.email_verified_at is not None
        assert accounts.password_matches(credentials.password, user.password_hash)
        scopes = sorted(k.scope for k in db.session.scalars(db.select(ApiKey)))
        assert scopes == ["agent", "operator"]

    path = tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["password"] == credentials.password
    assert stored["operator_api_key"].startswith("sm_live_")
    assert stored["agent_api_key"].startswith("sm_live_")


def test_second_start_reuses_everything(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        first = ensure_dev_credentials(tmp_path)
        second = ensure_dev_credentials(tmp_path)
        assert second == first
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1
        assert db.session.scalar(db.select(db.func.count()).select_from(ApiKey)) == 2


def test_stale_credentials_are_replaced(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        first = ensure_dev_credentials(tmp_path)
        for key in db.session.scalars(db.select(ApiKey).where(ApiKey.scope == "operator")):
            key.revoked_at = utcnow()
        user = accounts.find_user_by_email(DEV_ADMIN_EMAIL)
        user.password_hash = accounts.hash_password("someone changed it here")
        db.session.commit()

        second = ensure_dev_credentials(tmp_path)

        assert second.operator_api_key != first.operator_api_key
        assert second.agent_api_key == first.agent_api_key
        assert second.password != first.password
        user = accounts.find_user_by_email(DEV_ADMIN_EMAIL)
        assert accounts.password_matches(second.password, user.password_hash)
    assert json.loads((tmp_path / CREDENTIALS_FILE).read_text())["password"] == second.password
