"""Configuration: defaults, then the environment, then the caller's mapping.

Every setting a user may change is listed in ``ENV_SETTINGS`` and documented
in the README's configuration table. Secrets are generated once per data dir
in development and required in production (``SCRIPTMESH_ENV=production``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator import __version__

DEFAULT_DATA_DIR = "instance"
DEFAULT_ACCESS_TOKEN_MINUTES = 15
DEFAULT_REFRESH_TOKEN_DAYS = 7
DEFAULT_POLL_WAIT = 25.0
DEFAULT_LEASE_SECONDS = 30
DEFAULT_HEARTBEAT_INTERVAL = 60
DEFAULT_OFFLINE_AFTER_MISSED = 3
#: Seconds an authenticated API key is served from memory (revocations apply at once anyway).
DEFAULT_API_KEY_CACHE_SECONDS = 5.0
#: Days the audit log keeps an entry (``GET /audit``).
DEFAULT_AUDIT_RETENTION_DAYS = 365
DEFAULT_AUTH_RATE_LIMIT = "20 per minute"
DEFAULT_AUTH_IP_RATE_LIMIT = "60 per minute"
DEFAULT_WEBHOOK_TIMEOUT = 10.0
#: Seconds before each webhook/notification retry: 5 attempts over ~31 minutes.
DEFAULT_WEBHOOK_RETRY_DELAYS = "15,60,300,1500"
DEFAULT_NOTIFY_FALLBACK_EVENTS = "job.failed,job.timeout,agent.offline,schedule.missed"
#: Database connections per hub process: kept open, extra under load, seconds to wait for one.
#: A gevent worker serves thousands of requests but a request holds a connection only while
#: it talks to the database (never while a long-poll waits), so a few per process suffice;
#: workers x (size + overflow) must stay below PostgreSQL's max_connections (100).
DEFAULT_DATABASE_POOL_SIZE = 5
DEFAULT_DATABASE_MAX_OVERFLOW = 10
DEFAULT_DATABASE_POOL_TIMEOUT = 30.0
#: The Sentinel service name of ScriptMesh's Redis master (``REDIS_SENTINEL_MASTER``).
DEFAULT_REDIS_SENTINEL_MASTER = "scriptmesh"
MIN_SECRET_LENGTH = 32
#: AI provider calls: seconds per attempt, retries after a 429/5xx/network error.
DEFAULT_AI_TIMEOUT = 60.0
DEFAULT_AI_RETRIES = 2
#: Git API calls (commit statuses, PR comments): seconds per attempt.
DEFAULT_GIT_TIMEOUT = 15.0
#: Largest request body (bytes): an agent's result carries up to 2 x 1 MiB of output + events.
DEFAULT_MAX_CONTENT_LENGTH = 8 * 1024 * 1024
#: Endpoints whose bodies are small (sign-in, keys, settings) get this cap instead.
DEFAULT_MAX_SMALL_BODY = 64 * 1024

def env_bool(raw: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (case-insensitive)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


#: (config key, environment variable, type) for every user-facing setting.
ENV_SETTINGS: tuple[tuple[str, str, type], ...] = (
    ("SCRIPTMESH_ENV", "SCRIPTMESH_ENV", str),
    ("DATA_DIR", "SCRIPTMESH_DATA_DIR", str),
    ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", str),
    ("DATABASE_POOL_SIZE", "DATABASE_POOL_SIZE", int),
    ("DATABASE_MAX_OVERFLOW", "DATABASE_MAX_OVERFLOW", int),
    ("DATABASE_POOL_TIMEOUT", "DATABASE_POOL_TIMEOUT", float),
    ("REDIS_URL", "REDIS_URL", str),
    ("REDIS_SENTINELS", "REDIS_SENTINELS", str),
    ("REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_MASTER", str),
    ("SECRET_KEY", "SECRET_KEY", str),
    ("JWT_SECRET_KEY", "JWT_SECRET", str),
    ("ENCRYPTION_KEY", "ENCRYPTION_KEY", str),
    ("MAIL_SMTP_URL", "MAIL_SMTP_URL", str),
    ("MAIL_FROM", "MAIL_FROM", str),
    ("RESEND_API_KEY", "RESEND_API_KEY", str),
    ("ACCESS_TOKEN_MINUTES", "ACCESS_TOKEN_MINUTES", int),
    ("REFRESH_TOKEN_DAYS", "REFRESH_TOKEN_DAYS", int),
    ("AUTH_RATE_LIMIT", "AUTH_RATE_LIMIT", str),
    ("AUTH_IP_RATE_LIMIT", "AUTH_IP_RATE_LIMIT", str),
    ("POLL_WAIT", "POLL_WAIT", float),
    ("LEASE_SECONDS", "LEASE_SECONDS", int),
    ("HEARTBEAT_INTERVAL", "HEARTBEAT_INTERVAL", int),
    ("OFFLINE_AFTER_MISSED", "OFFLINE_AFTER_MISSED", int),
    ("API_KEY_CACHE_SECONDS", "API_KEY_CACHE_SECONDS", float),
    ("MAX_CONTENT_LENGTH", "MAX_CONTENT_LENGTH", int),
    ("TRUSTED_PROXIES", "TRUSTED_PROXIES", int),
    ("OUTBOUND_ALLOW", "OUTBOUND_ALLOW", str),
    ("AUDIT_RETENTION_DAYS", "AUDIT_RETENTION_DAYS", int),
    ("WEBHOOK_BLOCK_PRIVATE", "WEBHOOK_BLOCK_PRIVATE", env_bool),
    ("WEBHOOK_TIMEOUT", "WEBHOOK_TIMEOUT", float),
    ("WEBHOOK_RETRY_DELAYS", "WEBHOOK_RETRY_DELAYS", str),
    ("SLACK_WEBHOOK_URL", "SCRIPTMESH_SLACK_WEBHOOK_URL", str),
    ("DISCORD_WEBHOOK_URL", "SCRIPTMESH_DISCORD_WEBHOOK_URL", str),
    ("TEAMS_WEBHOOK_URL", "SCRIPTMESH_TEAMS_WEBHOOK_URL", str),
    ("PAGERDUTY_ROUTING_KEY", "SCRIPTMESH_PAGERDUTY_ROUTING_KEY", str),
    ("NOTIFY_FALLBACK_EVENTS", "SCRIPTMESH_NOTIFY_FALLBACK_EVENTS", str),
    # The last link of the AI provider chain (the providers' own variable names).
    ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY", str),
    ("ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL", str),
    ("OPENAI_API_KEY", "OPENAI_API_KEY", str),
    ("OPENAI_BASE_URL", "OPENAI_BASE_URL", str),
    ("OLLAMA_HOST", "OLLAMA_HOST", str),
    ("AI_MODEL", "SCRIPTMESH_AI_MODEL", str),
    ("AI_TIMEOUT", "SCRIPTMESH_AI_TIMEOUT", float),
    ("AI_RETRIES", "SCRIPTMESH_AI_RETRIES", int),
    ("GIT_TIMEOUT", "SCRIPTMESH_GIT_TIMEOUT", float),
)

SECRET_SETTINGS = ("SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; start-up stops with this message."""


def default_settings() -> dict[str, Any]:
    """The built-in defaults, before the environment is read."""
    return {
        "SCRIPTMESH_ENV": "development",
        "DATA_DIR": DEFAULT_DATA_DIR,
        "SQLALCHEMY_DATABASE_URI": None,
        "DATABASE_POOL_SIZE": DEFAULT_DATABASE_POOL_SIZE,
        "DATABASE_MAX_OVERFLOW": DEFAULT_DATABASE_MAX_OVERFLOW,
        "DATABASE_POOL_TIMEOUT": DEFAULT_DATABASE_POOL_TIMEOUT,
        "REDIS_URL": None,
        "REDIS_SENTINELS": None,
        "REDIS_SENTINEL_MASTER": DEFAULT_REDIS_SENTINEL_MASTER,
        "MAIL_SMTP_URL": None,
        "MAIL_FROM": "ScriptMesh <no-reply@scriptmesh.local>",
        "RESEND_API_KEY": None,
        "ACCESS_TOKEN_MINUTES": DEFAULT_ACCESS_TOKEN_MINUTES,
        "REFRESH_TOKEN_DAYS": DEFAULT_REFRESH_TOKEN_DAYS,
        "AUTH_RATE_LIMIT": DEFAULT_AUTH_RATE_LIMIT,
        "AUTH_IP_RATE_LIMIT": DEFAULT_AUTH_IP_RATE_LIMIT,
        "RATELIMIT_ENABLED": True,
        "WEBHOOK_BLOCK_PRIVATE": False,
        "WEBHOOK_TIMEOUT": DEFAULT_WEBHOOK_TIMEOUT,
        "WEBHOOK_RETRY_DELAYS": DEFAULT_WEBHOOK_RETRY_DELAYS,
        "SLACK_WEBHOOK_URL": None,
        "DISCORD_WEBHOOK_URL": None,
        "TEAMS_WEBHOOK_URL": None,
        "PAGERDUTY_ROUTING_KEY": None,
        "NOTIFY_FALLBACK_EVENTS": DEFAULT_NOTIFY_FALLBACK_EVENTS,
        "ANTHROPIC_API_KEY": None,
        "ANTHROPIC_BASE_URL": None,
        "OPENAI_API_KEY": None,
        "OPENAI_BASE_URL": None,
        "OLLAMA_HOST": None,
        "AI_MODEL": None,
        "AI_TIMEOUT": DEFAULT_AI_TIMEOUT,
        "AI_RETRIES": DEFAULT_AI_RETRIES,
        "GIT_TIMEOUT": DEFAULT_GIT_TIMEOUT,
        "POLL_WAIT": DEFAULT_POLL_WAIT,
        "LEASE_SECONDS": DEFAULT_LEASE_SECONDS,
        "HEARTBEAT_INTERVAL": DEFAULT_HEARTBEAT_INTERVAL,
        "OFFLINE_AFTER_MISSED": DEFAULT_OFFLINE_AFTER_MISSED,
        "API_KEY_CACHE_SECONDS": DEFAULT_API_KEY_CACHE_SECONDS,
        "MAX_CONTENT_LENGTH": DEFAULT_MAX_CONTENT_LENGTH,
        "MAX_SMALL_BODY": DEFAULT_MAX_SMALL_BODY,
        "TRUSTED_PROXIES": 0,
        "OUTBOUND_ALLOW": "",
        "AUDIT_RETENTION_DAYS": DEFAULT_AUDIT_RETENTION_DAYS,
        # Library settings that are not meant to be changed by users.
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "JSON_SORT_KEYS": False,
        "API_TITLE": "ScriptMesh",
        "API_VERSION": __version__,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "/docs/static/",
        "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": True},
        "PROPAGATE_EXCEPTIONS": False,
    }


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read every setting of ``ENV_SETTINGS`` that the environment sets."""
    found: dict[str, Any] = {}
    for key, var, kind in ENV_SETTINGS:
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            found[key] = kind(raw)
        except ValueError as exc:
            raise ConfigError(f"{var} must be a {kind.__name__}, got {raw!r}") from exc
    return found


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults, then the environment, then ``overrides``; secrets resolved last."""
    settings = default_settings()
    settings.update(from_environment(os.environ if environ is None else environ))
    settings.update(overrides or {})
    data_dir = Path(settings["DATA_DIR"]).resolve()
    settings["DATA_DIR"] = str(data_dir)
    if not settings.get("SQLALCHEMY_DATABASE_URI"):
        secure_data_dir(data_dir)
        settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{data_dir / 'scriptmesh.db'}"
    settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        settings["SQLALCHEMY_DATABASE_URI"]
    )
    resolve_secrets(settings, data_dir)
    return settings


def secure_data_dir(data_dir: Path) -> None:
    """The data dir holds the database, Redis data, secrets and mails: owner-only.

    The directory becomes 0700, files already in it 0600, and the process umask
    077 so what the hub (and its embedded Redis) creates later is 0600 too.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.umask(0o077)
    try:
        data_dir.chmod(0o700)
        for path in data_dir.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
    except OSError:
        pass  # not ours to change (a shared mount): leave it


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy defaults to psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_production(settings: Mapping[str, Any]) -> bool:
    return str(settings.get("SCRIPTMESH_ENV", "")).lower() == "production"


def resolve_secrets(settings: dict[str, Any], data_dir: Path) -> None:
    """Fill missing secrets: generated and kept in the data dir, or an error in production."""
    missing = [k for k in SECRET_SETTINGS if not settings.get(k)]
    if is_production(settings):
        names = {"SECRET_KEY": "SECRET_KEY", "JWT_SECRET_KEY": "JWT_SECRET",
                 "ENCRYPTION_KEY": "ENCRYPTION_KEY"}
        for key in SECRET_SETTINGS:
            value = settings.get(key) or ""
            if len(value) < MIN_SECRET_LENGTH:
                problem = "is not set" if not value else "is too short"
                raise ConfigError(
                    f"{names[key]} {problem}: production needs at least "
                    f"{MIN_SECRET_LENGTH} characters (generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
    elif missing:
        stored = load_or_create_dev_secrets(data_dir)
        for key in missing:
            settings[key] = stored[key]
    settings["ENCRYPTION_KEYS"] = parse_encryption_keys(settings["ENCRYPTION_KEY"])


def load_or_create_dev_secrets(data_dir: Path) -> dict[str, str]:
    """Development secrets, generated once and kept in ``<data dir>/secrets.json`` (0600)."""
    secure_data_dir(data_dir)
    path = data_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def parse_encryption_keys(raw: str) -> dict[str, bytes]:
    """``ENCRYPTION_KEY`` is ``key`` or ``id1:key1,id2:key2`` (the first encrypts new data).

    A key is 32 bytes, url-safe base64; any other text is stretched with SHA-256
    so a long passphrase also works.
    """
    import hashlib

    keys: dict[str, bytes] = {}
    for index, part in enumerate(p.strip() for p in raw.split(",") if p.strip()):
        key_id, _, material = part.rpartition(":") if ":" in part else ("", "", part)
        key_id = key_id or f"k{index + 1}"
        try:
            decoded = base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))
        except ValueError:
            decoded = b""
        keys[key_id] = decoded if len(decoded) == 32 else hashlib.sha256(material.encode()).digest()
    if not keys:
        raise ConfigError("ENCRYPTION_KEY is empty")
    return keys
