"""The local admin and API keys of ``scriptmesh dev``, kept in ``<data dir>/dev-credentials.json``.

Made on the first start through the account services, reused on the next
ones: a credential that no longer works (the database was reset, a key was
revoked) is replaced, so the file always holds working values. The file is
readable by its owner only (0600).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.extensions import db
from orchestrator.models import ApiKey, Scope, User, utcnow
from orchestrator.security import hash_api_key
from orchestrator.services import accounts, api_keys

CREDENTIALS_FILE = "dev-credentials.json"
DEV_ADMIN_EMAIL = "admin@scriptmesh.local"
DEV_TENANT_NAME = "local"
LOCAL_AGENT_NAME = "local-agent"
OPERATOR_KEY_NAME = "dev: curl and scripts"
AGENT_KEY_NAME = f"dev: {LOCAL_AGENT_NAME}"


@dataclass
class DevCredentials:
    """What ``scriptmesh dev`` prints and the local agent uses."""

    email: str
    password: str
    operator_api_key: str
    agent_api_key: str


def ensure_dev_credentials(data_dir: Path) -> DevCredentials:
    """Load the data dir's credentials, (re)creating whatever is missing or stale.

    Runs inside an app context whose database is migrated.
    """
    path = data_dir / CREDENTIALS_FILE
    stored = json.loads(path.read_text()) if path.exists() else {}
    user, password = _ensure_admin(stored.get("email") or DEV_ADMIN_EMAIL,
                                   stored.get("password"))
    operator_key = _ensure_key(user, stored.get("operator_api_key"), Scope.OPERATOR,
                               OPERATOR_KEY_NAME)
    agent_key = _ensure_key(user, stored.get("agent_api_key"), Scope.AGENT, AGENT_KEY_NAME)
    credentials = DevCredentials(user.email, password, operator_key, agent_key)
    if asdict(credentials) != stored:
        write_private_json(path, asdict(credentials))
    return credentials


def _ensure_admin(email: str, password: str | None) -> tuple[User, str]:
    """The dev admin with a known password: created, or its password reset if unknown."""
    user = accounts.find_user_by_email(email)
    if user is not None and password and accounts.password_matches(password, user.password_hash):
        return user, password
    password = secrets.token_urlsafe(12)
    if user is None:
        user = accounts.create_user(email, password, tenant_name=DEV_TENANT_NAME,
                                    verified=True, is_admin=True)
    else:
        user.password_hash = accounts.hash_password(password)
    db.session.commit()
    return user, password


def _ensure_key(owner: User, raw_key: str | None, scope: Scope, name: str) -> str:
    """``raw_key`` if it still authenticates ``owner`` with ``scope``, else a new key."""
    if raw_key and _key_works(owner, raw_key, scope):
        return raw_key
    _key, raw = api_keys.create_api_key(
        owner, name, scope=scope, pools=["*"] if scope is Scope.AGENT else None)
    return raw


def _key_works(owner: User, raw_key: str, scope: Scope) -> bool:
    key = db.session.execute(
        db.select(ApiKey).where(ApiKey.key_hash == hash_api_key(raw_key))
        .execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if key is None or key.user_id != owner.id or key.scope != scope.value:
        return False
    if key.revoked_at is not None or (key.expires_at and key.expires_at <= utcnow()):
        return False
    return scope is not Scope.AGENT or key.agent_name in (None, LOCAL_AGENT_NAME)


def write_private_json(path: Path, values: dict[str, str]) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``values``."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
