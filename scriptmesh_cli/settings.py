"""Which hub the CLI talks to and with which credential: flags, environment, login session, dev.

In order: ``--token`` / ``SCRIPTMESH_TOKEN``; the session ``scriptmesh login``
stored for that URL (``$XDG_CONFIG_HOME/scriptmesh/session.json``, default
``~/.config``, mode 0600); and for a hub on this machine, the credentials a
running ``scriptmesh dev`` wrote to its data dir (``SCRIPTMESH_DATA_DIR`` or
``./instance``, file ``dev-credentials.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:5000"
SESSION_FILE = "session.json"
DEV_CREDENTIALS_FILE = "dev-credentials.json"
DEFAULT_DATA_DIR = "instance"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/scriptmesh`` (``~/.config/scriptmesh`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scriptmesh"


def normalise_url(url: str) -> str:
    return url.rstrip("/")


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_private_json(path: Path, values: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a 0600 file (its directory 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def load_session(url: str) -> dict[str, Any] | None:
    """The stored login session for ``url`` (``access_token``, ``refresh_token``, ``email``)."""
    return read_json(config_dir() / SESSION_FILE).get(normalise_url(url))


def save_session(url: str, session: dict[str, Any] | None) -> Path:
    """Store (or with None, forget) the login session for ``url``."""
    path = config_dir() / SESSION_FILE
    sessions = read_json(path)
    if session is None:
        sessions.pop(normalise_url(url), None)
    else:
        sessions[normalise_url(url)] = session
    write_private_json(path, sessions)
    return path


def dev_credentials(url: str) -> dict[str, Any] | None:
    """What ``scriptmesh dev`` wrote for a hub on this machine (None for a remote URL)."""
    if (urlsplit(url).hostname or "") not in LOOPBACK_HOSTS:
        return None
    data_dir = Path(os.environ.get("SCRIPTMESH_DATA_DIR") or DEFAULT_DATA_DIR)
    found = read_json(data_dir / DEV_CREDENTIALS_FILE)
    return found if found.get("operator_api_key") else None


@dataclass
class Target:
    """The hub and how to authenticate to it."""

    url: str
    token: str | None = None
    #: Where the token came from: flag, env, session, dev or none.
    source: str = "none"
    session: dict[str, Any] | None = None
    dev: dict[str, Any] | None = field(default=None, repr=False)


def resolve(url: str | None, token: str | None, token_from_env: bool) -> Target:
    """The hub and the credential for this invocation (see the module docstring)."""
    url = normalise_url(url or DEFAULT_URL)
    if token:
        return Target(url, token, "env" if token_from_env else "flag")
    session = load_session(url)
    if session and session.get("access_token"):
        return Target(url, session["access_token"], "session", session=session)
    dev = dev_credentials(url)
    if dev:
        return Target(url, dev["operator_api_key"], "dev", dev=dev)
    return Target(url)
