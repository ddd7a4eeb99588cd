"""Trigger-time check of a script's params against the params its agent's manifest declares.

The agent reports, per script, ``params: [{name, type, required, default,
pattern, enum, description}]`` and whether it accepts undeclared params
(``allow_undeclared_params``; then only lower-case names, which it passes as
``PARAM_<name>``). The rules mirror ``agent/params.py`` (the agent stays the
final authority; the hub refuses early so no job is queued only to fail):
a trigger with an undeclared, missing-required or invalid param is a 422
``invalid_params`` naming the param and the script.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.errors import ValidationFailed
from orchestrator.models import Agent

PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
INTEGER_RE = re.compile(r"^-?[0-9]{1,19}$")
MAX_VALUE_CHARS = 32 * 1024


class ParamRefused(Exception):
    """One param is not acceptable: ``param`` names it, the message says why."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def as_text(value: Any) -> str:
    """A JSON value as the script's environment sees it (``dispatch.string_params``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def _typed(spec: Mapping[str, Any], text: str) -> Any:
    name, kind = spec["name"], spec.get("type", "string")
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ParamRefused(name, f"must be true or false, got {text[:40]!r}")
        return text == "true"
    if kind == "integer":
        if not INTEGER_RE.match(text):
            raise ParamRefused(name, f"must be an integer, got {text[:40]!r}")
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ParamRefused(name, f"must be a number, got {text[:40]!r}") from None
        if not math.isfinite(number):
            raise ParamRefused(name, "must be a finite number")
        return number
    return text


def check_value(spec: Mapping[str, Any], value: Any) -> None:
    """Raise :class:`ParamRefused` unless ``value`` fits the declared type, pattern and enum."""
    name = spec["name"]
    text = as_text(value)
    if len(text) > MAX_VALUE_CHARS or "\x00" in text:
        raise ParamRefused(name, f"must be at most {MAX_VALUE_CHARS} characters, no NUL byte")
    converted = _typed(spec, text)
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, text) is not None
        except re.error:
            matched = False
        if not matched:
            raise ParamRefused(name, f"must match {pattern}")
    enum = spec.get("enum")
    if isinstance(enum, list):
        allowed = []
        for option in enum:
            try:
                allowed.append(_typed(spec, as_text(option)))
            except ParamRefused:
                continue
        if converted not in allowed:
            raise ParamRefused(name, "must be one of: " + ", ".join(as_text(v) for v in enum))


def check_params(declared: Iterable[Mapping[str, Any]], params: Mapping[str, Any],
                 allow_undeclared: bool) -> None:
    """Raise :class:`ParamRefused` for the first unacceptable param of ``params``."""
    specs = {spec["name"]: spec for spec in declared
             if isinstance(spec, Mapping) and isinstance(spec.get("name"), str)}
    for name, value in params.items():
        if name in specs:
            check_value(specs[name], value)
        elif not allow_undeclared:
            known = ", ".join(sorted(specs)) or "none"
            raise ParamRefused(name, f"is not declared (declared params: {known})")
        elif not PARAM_NAME_RE.match(name):
            raise ParamRefused(name, f"is not declared, and undeclared param names must match "
                                     f"{PARAM_NAME_RE.pattern}")
    for spec in specs.values():
        if spec.get("required") and spec.get("default") is None and spec["name"] not in params:
            raise ParamRefused(spec["name"], "is required")


def script_entry(agent: Agent, script: str) -> Mapping[str, Any]:
    """``script``'s entry in the agent's last reported manifest (empty when absent)."""
    for entry in (agent.manifest or {}).get("scripts", []):
        if isinstance(entry, Mapping) and entry.get("name") == script:
            return entry
    return {}


def refusal(agent: Agent, script: str, params: Mapping[str, Any]) -> ParamRefused | None:
    """Why ``agent`` would refuse ``params`` for ``script``, or None when it accepts them."""
    entry = script_entry(agent, script)
    allow = bool((agent.manifest or {}).get("allow_undeclared_params"))
    try:
        check_params(entry.get("params") or [], params, allow)
    except ParamRefused as exc:
        return exc
    return None


def invalid_params(agent: Agent, script: str, refused: ParamRefused) -> ValidationFailed:
    """The 422 ``invalid_params`` for a refusal."""
    return ValidationFailed(
        f"Param '{refused.param}' of script '{script}' {refused} (agent '{agent.name}').",
        error_code="invalid_params",
        details={"script": script, "param": refused.param, "agent": agent.name})


def validate_trigger_params(agent: Agent, script: str, params: Mapping[str, Any] | None) -> None:
    """422 ``invalid_params`` unless ``agent``'s manifest accepts ``params`` for ``script``."""
    refused = refusal(agent, script, params or {})
    if refused is not None:
        raise invalid_params(agent, script, refused)


def validate_for_agents(agents: Iterable[Agent], script: str,
                        params: Mapping[str, Any] | None) -> None:
    """Like :func:`validate_trigger_params` for every agent that lists ``script``
    (fan-outs, pools and schedules: any of them may run the job)."""
    for agent in agents:
        if script_entry(agent, script):
            validate_trigger_params(agent, script, params)


def declared_names(agents: Iterable[Agent], script: str) -> set[str] | None:
    """The params every agent listing ``script`` declares for it; None when one of them
    also takes undeclared ones (then nothing needs leaving out)."""
    names: set[str] | None = None
    for agent in agents:
        entry = script_entry(agent, script)
        if not entry:
            continue
        if (agent.manifest or {}).get("allow_undeclared_params"):
            return None
        mine = {spec.get("name") for spec in entry.get("params") or []}
        names = mine if names is None else names & mine
    return names if names is not None else set()


def validate_schedule(schedule: Any, fleet: Iterable[Agent]) -> None:
    """422 ``invalid_params`` when an agent a script schedule targets would refuse its params."""
    if schedule.kind == "flow":
        return
    names = [schedule.agent] if schedule.agent else list(schedule.agents or [])
    wanted = {schedule.pool} if schedule.pool else set(schedule.tags or [])
    targets = [agent for agent in fleet
               if agent.name in names or (wanted and wanted <= set(agent.tags or []))]
    validate_for_agents(targets, schedule.script, schedule.params)
