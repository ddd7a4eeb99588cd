"""Agent configuration: defaults, environment variables and flags in one validated dataclass."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from agent.backoff import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP

DEFAULT_ORCHESTRATOR_URL = "http://localhost:5000"
DEFAULT_HEARTBEAT_INTERVAL = 60.0
DEFAULT_SCRIPTS_DIR = "/scripts"
DEFAULT_MANIFEST_PATH = "/agent/script_manifest.json"
DEFAULT_WORKERS = 4
DEFAULT_AGENT_PORT = 8001
DEFAULT_POLL_WAIT = 25.0
DEFAULT_OUTPUT_CAP_BYTES = 1024 * 1024
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_KILL_GRACE = 5.0
DEFAULT_SYSTEM_SPOOL_ROOT = "/var/lib/scriptmesh-agent"
DEFAULT_USER_SPOOL_ROOT = "~/.scriptmesh-agent"

#: Environment variable for each configurable field (flags use the same names, kebab-cased).
ENV_VARS = {
    "agent_name": "AGENT_NAME",
    "orchestrator_url": "ORCHESTRATOR_URL",
    "api_key": "API_KEY",
    "heartbeat_interval": "HEARTBEAT_INTERVAL",
    "scripts_dir": "SCRIPTS_DIR",
    "manifest_path": "MANIFEST_PATH",
    "tags": "AGENT_TAGS",
    "workers": "WORKERS",
    "agent_port": "AGENT_PORT",
    "spool_dir": "SPOOL_DIR",
    "poll_wait": "POLL_WAIT",
    "output_cap_bytes": "OUTPUT_CAP_BYTES",
    "drain_timeout": "DRAIN_TIMEOUT",
    "ca_bundle": "CA_BUNDLE",
    "kill_grace": "KILL_GRACE",
    "backoff_base": "BACKOFF_BASE",
    "backoff_cap": "BACKOFF_CAP",
    "allow_undeclared_params": "ALLOW_UNDECLARED_PARAMS",
}

#: Opt-ins for inline flows (``POST /agent/dispatch``): off unless set to true.
INLINE_FLOWS_VAR = "ALLOW_INLINE_FLOWS"
INLINE_FLOW_SCRIPTS_VAR = "ALLOW_INLINE_FLOW_SCRIPTS"
_TRUE = ("1", "true", "yes", "on")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True)
class InlinePolicy:
    """Whether this agent runs flow definitions sent with a job (not from its manifest),
    and whether such flows may use ``script`` steps."""

    flows: bool = False
    scripts: bool = False


def inline_policy(env: Mapping[str, str] | None = None) -> InlinePolicy:
    """Read ``ALLOW_INLINE_FLOWS`` / ``ALLOW_INLINE_FLOW_SCRIPTS`` (default: both off)."""
    env = os.environ if env is None else env
    flows = env.get(INLINE_FLOWS_VAR, "").strip().lower() in _TRUE
    scripts = flows and env.get(INLINE_FLOW_SCRIPTS_VAR, "").strip().lower() in _TRUE
    return InlinePolicy(flows, scripts)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message is one line for stderr."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent daemon needs, validated once at start."""

    agent_name: str
    api_key: str = field(repr=False)
    orchestrator_url: str = DEFAULT_ORCHESTRATOR_URL
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    scripts_dir: str = DEFAULT_SCRIPTS_DIR
    manifest_path: str = DEFAULT_MANIFEST_PATH
    tags: tuple[str, ...] = ()
    workers: int = DEFAULT_WORKERS
    agent_port: int = DEFAULT_AGENT_PORT
    spool_dir: str = ""
    poll_wait: float = DEFAULT_POLL_WAIT
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    ca_bundle: str | None = None
    kill_grace: float = DEFAULT_KILL_GRACE
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    #: Pass params the manifest does not declare (as ``PARAM_<name>`` only; agent/params.py).
    allow_undeclared_params: bool = False


def merge_sources(flags: Mapping[str, object], env: Mapping[str, str]) -> dict[str, object]:
    """Combine flags (winning) with environment variables into raw values by field name."""
    raw: dict[str, object] = {}
    for name, var in ENV_VARS.items():
        value = flags.get(name)
        if value is None or value == "":
            value = env.get(var)
        if value is not None and value != "":
            raw[name] = value
    return raw


def _number(raw: Mapping[str, object], name: str, kind: type, minimum: float) -> object:
    value = raw[name]
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{ENV_VARS[name]} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{ENV_VARS[name]} must be >= {minimum}, got {value!r}")
    return number


def _flag(raw: Mapping[str, object], name: str) -> bool:
    value = str(raw.get(name, "false")).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{ENV_VARS[name]} must be true or false, got {value!r}")
    return value in ("true", "1", "yes")


def _check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"ORCHESTRATOR_URL must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def _parse_tags(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(tag.strip() for tag in items if str(tag).strip())


def default_spool_dir(agent_name: str) -> str:
    """Pick ``/var/lib/scriptmesh-agent/spool/<name>`` when writable, else a per-user path.

    The agent name is part of the default so two agents on one host never
    resend each other's results.
    """
    system = Path(DEFAULT_SYSTEM_SPOOL_ROOT)
    candidate = system if system.is_dir() else system.parent
    if os.access(candidate, os.W_OK):
        return str(system / "spool" / agent_name)
    return str(Path(DEFAULT_USER_SPOOL_ROOT).expanduser() / "spool" / agent_name)


def load_config(flags: Mapping[str, object], env: Mapping[str, str] | None = None) -> AgentConfig:
    """Build an :class:`AgentConfig` from flags and environment, or raise :class:`ConfigError`."""
    raw = merge_sources(flags, os.environ if env is None else env)
    name = str(raw.get("agent_name", "")).strip()
    if not name:
        raise ConfigError("AGENT_NAME is required (set AGENT_NAME or --agent-name)")
    if not _NAME_RE.match(name):
        raise ConfigError(f"AGENT_NAME {name!r} may only use letters, digits, '_', '.', ':', '-'")
    key = str(raw.get("api_key", "")).strip()
    if not key:
        raise ConfigError("API_KEY is required (set API_KEY or --api-key)")
    if not key.isprintable() or any(ch.isspace() for ch in key):
        # Never echo the key: it would end up in logs.
        raise ConfigError("API_KEY contains whitespace or control characters")
    values: dict[str, object] = {"agent_name": name, "api_key": key}
    url = str(raw.get("orchestrator_url", DEFAULT_ORCHESTRATOR_URL))
    values["orchestrator_url"] = _check_url(url)
    for fname, kind, minimum in (
        ("heartbeat_interval", float, 0.05),
        ("workers", int, 1),
        ("agent_port", int, 0),
        ("poll_wait", float, 0),
        ("output_cap_bytes", int, 64),
        ("drain_timeout", float, 0),
        ("kill_grace", float, 0),
        ("backoff_base", float, 0.001),
        ("backoff_cap", float, 0.001),
    ):
        if fname in raw:
            values[fname] = _number(raw, fname, kind, minimum)
    if values.get("agent_port", 0) > 65535:
        raise ConfigError("AGENT_PORT must be <= 65535")
    for fname in ("scripts_dir", "manifest_path"):
        if fname in raw:
            values[fname] = str(raw[fname])
    values["tags"] = _parse_tags(raw.get("tags", ""))
    ca_bundle = raw.get("ca_bundle")
    if ca_bundle is not None and not os.path.isfile(str(ca_bundle)):
        raise ConfigError(f"CA_BUNDLE {ca_bundle!r} is not a readable file")
    values["ca_bundle"] = None if ca_bundle is None else str(ca_bundle)
    values["spool_dir"] = str(raw.get("spool_dir") or default_spool_dir(name))
    values["allow_undeclared_params"] = _flag(raw, "allow_undeclared_params")
    config = AgentConfig(**values)  # type: ignore[arg-type]
    if config.backoff_cap < config.backoff_base:
        raise ConfigError("BACKOFF_CAP must be >= BACKOFF_BASE")
    return config
