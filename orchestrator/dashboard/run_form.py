"""The Run form: what it offers (from an agent's declared params) and the trigger it sends."""

from __future__ import annotations

from typing import Any

from orchestrator.extensions import db
from orchestrator.models import Agent
from orchestrator.services.agent_pages import agent_status, flow_entries, script_entries

TARGET_KINDS = ("agent", "tags", "pool")
TRUE_WORDS = frozenset({"1", "true", "on", "yes"})


def split_words(raw: str | None) -> list[str]:
    return [w for w in (raw or "").replace(",", " ").split() if w]


def reference_agent(target: str, value: str) -> Agent | None:
    """The agent whose manifest the form is built from: the agent itself, or for tags and
    pools the first online agent carrying them (the first one at all if none is online)."""
    if target == "agent":
        return db.session.execute(
            db.select(Agent).where(Agent.name == value)).scalar_one_or_none()
    wanted = set(split_words(value))
    if not wanted:
        return None
    found = None
    for agent in db.session.execute(db.select(Agent).order_by(Agent.name)).scalars():
        if wanted <= set(agent.tags or []):
            if agent_status(agent) == "online":
                return agent
            found = found or agent
    return found


def runnables(agent: Agent | None) -> dict[str, list[dict[str, Any]]]:
    if agent is None:
        return {"script": [], "flow": []}
    return {"script": script_entries(agent), "flow": flow_entries(agent)}


def parse_lines(raw: str) -> dict[str, str]:
    """``KEY=value`` per line (blank lines and ``#`` comments skipped)."""
    found: dict[str, str] = {}
    for line in (raw or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        found[key.strip()] = value.strip()
    return found


def typed(declared: dict[str, Any], raw: str) -> Any:
    """A form value as the declared type (left as text when it does not parse: the hub's
    validation then names the param)."""
    kind = declared.get("type", "string")
    try:
        if kind == "boolean":
            return raw.lower() in TRUE_WORDS
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)  # "4" stays 4, as the user typed it, not 4.0
            return int(number) if number.is_integer() and "." not in raw else number
    except ValueError:
        return raw
    return raw


def declared_values(params: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """The declared params the user filled (booleans always: a checkbox is never empty)."""
    values: dict[str, Any] = {}
    for declared in params:
        name = declared.get("name")
        raw = form.get(f"param.{name}", "").strip()
        if declared.get("type") == "boolean":
            values[name] = raw.lower() in TRUE_WORDS
        elif raw:
            values[name] = typed(declared, raw)
    return values


def trigger_data(form: Any, params: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``POST /trigger-script`` body the form describes (before schema validation)."""
    target, value = form.get("target", "agent"), form.get("value", "").strip()
    data: dict[str, Any] = {}
    if target == "agent":
        data["agent"] = value
    elif target == "pool":
        data["pool"] = value
    else:
        data["tags"] = split_words(value)
        if form.get("max_concurrency", "").strip():
            data["max_concurrency"] = form["max_concurrency"].strip()
    extra = parse_lines(form.get("extra", ""))
    if form.get("kind") == "flow":
        data["run_flow"] = form.get("name", "")
        data["variables"] = extra
    else:
        data["run_script"] = form.get("name", "")
        data["params"] = {**extra, **declared_values(params, form)}
    if form.get("timeout", "").strip():
        data["timeout"] = form["timeout"].strip()
    return data
