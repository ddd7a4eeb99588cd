"""Declared script params: parse a manifest entry's ``params`` and turn a job's params into env.

A script receives exactly the params its manifest entry declares, each as an
environment variable named as declared (``target`` -> ``$target``), checked
against the declared type, pattern and enum. Undeclared params are refused
unless the agent runs with ``ALLOW_UNDECLARED_PARAMS=true``; even then they
only ever reach the script as ``PARAM_<name>`` (lower-case names), a prefix no
common tool reads, so a param can never become ``TAR_OPTIONS``, ``LD_PRELOAD``,
``GIT_SSH_COMMAND`` or ``http_proxy``. The hub checks the same rules at trigger
time (``orchestrator/services/params.py``); the agent stays the final authority.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PARAM_TYPES = ("string", "integer", "number", "boolean")
UNDECLARED_PREFIX = "PARAM_"
MAX_DECLARED_PARAMS = 100
MAX_PATTERN_CHARS = 256
MAX_VALUE_CHARS = 32 * 1024
MAX_ENUM = 100
INTEGER_RE = re.compile(r"^-?[0-9]{1,19}$")
#: Lower-case names common tools read anyway (curl, wget, git, pip, requests): never params.
TOOL_READ_SUFFIX = "_proxy"
PARAM_KEYS = {"name", "required", "default", "type", "pattern", "enum", "description"}


class ParamError(ValueError):
    """A declaration or a value is invalid; the message names the param."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared param of a manifest script entry."""

    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    pattern: str | None = None
    enum: tuple[Any, ...] | None = None
    description: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The declaration as the hub sees it (absent keys left out)."""
        wire: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        for key in ("default", "pattern", "enum"):
            value = getattr(self, key)
            if value is not None:
                wire[key] = list(value) if key == "enum" else value
        if self.description:
            wire["description"] = self.description
        return wire


def as_text(value: Any) -> str:
    """A JSON value as the environment sees it: booleans true/false, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def typed(spec: ParamSpec, text: str) -> Any:
    """``text`` converted to the declared type; :class:`ParamError` when it does not fit."""
    if spec.type == "boolean":
        if text not in ("true", "false"):
            raise ParamError(f"param '{spec.name}' must be true or false")
        return text == "true"
    if spec.type == "integer":
        if not INTEGER_RE.match(text):
            raise ParamError(f"param '{spec.name}' must be an integer")
        return int(text)
    if spec.type == "number":
        try:
            number = float(text)
        except ValueError:
            raise ParamError(f"param '{spec.name}' must be a number") from None
        if not math.isfinite(number):
            raise ParamError(f"param '{spec.name}' must be a finite number")
        return number
    return text


def check_value(spec: ParamSpec, value: Any) -> str:
    """The env text for ``value`` of ``spec`` after type, pattern and enum checks."""
    if not isinstance(value, str | int | float | bool):
        raise ParamError(f"param '{spec.name}' must be a string, number or boolean")
    text = as_text(value)
    if len(text) > MAX_VALUE_CHARS or "\x00" in text:
        raise ParamError(f"param '{spec.name}' must be at most {MAX_VALUE_CHARS} characters "
                         "without NUL bytes")
    converted = typed(spec, text)
    if spec.pattern is not None and not re.search(spec.pattern, text):
        raise ParamError(f"param '{spec.name}' must match {spec.pattern}")
    if spec.enum is not None and converted not in spec.enum:
        allowed = ", ".join(as_text(v) for v in spec.enum)
        raise ParamError(f"param '{spec.name}' must be one of: {allowed}")
    return text


def _check_declaration(item: Mapping[str, Any]) -> ParamSpec:
    unknown = set(item) - PARAM_KEYS
    name = item.get("name")
    if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
        raise ParamError(f"param name {name!r} must match {PARAM_NAME_RE.pattern}")
    if name.endswith(TOOL_READ_SUFFIX):
        raise ParamError(f"param '{name}': names ending in {TOOL_READ_SUFFIX} are read by "
                         "common tools (curl, git, pip); choose another name")
    if unknown:
        raise ParamError(f"param '{name}': unknown keys {sorted(unknown)}")
    kind = item.get("type", "string")
    if kind not in PARAM_TYPES:
        raise ParamError(f"param '{name}': type must be one of {', '.join(PARAM_TYPES)}")
    pattern = item.get("pattern")
    if pattern is not None:
        if kind != "string" or not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_CHARS:
            raise ParamError(f"param '{name}': pattern must be a string of at most "
                             f"{MAX_PATTERN_CHARS} characters, on a string param")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ParamError(f"param '{name}': pattern is not a valid regex: {exc}") from None
    enum = item.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum or len(enum) > MAX_ENUM):
        raise ParamError(f"param '{name}': enum must be a non-empty list of at most {MAX_ENUM}")
    required = item.get("required", False)
    description = item.get("description", "")
    if not isinstance(required, bool) or not isinstance(description, str):
        raise ParamError(f"param '{name}': required must be a boolean, description a string")
    spec = ParamSpec(name, kind, required, None, pattern, None, description[:2000])
    if enum is not None:
        spec = ParamSpec(name, kind, required, None, pattern,
                         tuple(typed(spec, check_value(spec, v)) for v in enum), spec.description)
    if item.get("default") is not None:
        check_value(spec, item["default"])
        spec = ParamSpec(name, kind, required, item["default"], pattern, spec.enum,
                         spec.description)
    return spec


def parse_declarations(value: Any) -> tuple[ParamSpec, ...]:
    """Validate a manifest entry's ``params`` list (None: no params declared)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_DECLARED_PARAMS:
        raise ParamError(f"'params' must be a list of at most {MAX_DECLARED_PARAMS} objects")
    specs: dict[str, ParamSpec] = {}
    for item in value:
        if not isinstance(item, dict):
            raise ParamError("each entry of 'params' must be an object")
        spec = _check_declaration(item)
        if spec.name in specs:
            raise ParamError(f"param '{spec.name}' is declared twice")
        specs[spec.name] = spec
    return tuple(specs.values())


def param_env(specs: tuple[ParamSpec, ...], params: Mapping[str, Any],
              allow_undeclared: bool = False) -> dict[str, str]:
    """The environment variables a job's ``params`` give the script.

    Declared params keep their name; missing ones take their default (none
    when there is no default); a missing required one is refused. Undeclared
    params are refused, or with ``allow_undeclared`` passed as ``PARAM_<name>``.
    :raises ParamError: naming the first param that is not acceptable.
    """
    declared = {spec.name: spec for spec in specs}
    env: dict[str, str] = {}
    for name, value in params.items():
        spec = declared.get(name)
        if spec is not None:
            env[name] = check_value(spec, value)
        elif not allow_undeclared:
            raise ParamError(f"param '{name}' is not declared")
        elif not PARAM_NAME_RE.match(str(name)):
            raise ParamError(f"undeclared param name {name!r} must match "
                             f"{PARAM_NAME_RE.pattern}")
        else:
            env[UNDECLARED_PREFIX + name] = check_value(ParamSpec(name), value)
    for spec in specs:
        if spec.name in env:
            continue
        if spec.default is not None:
            env[spec.name] = as_text(spec.default)
        elif spec.required:
            raise ParamError(f"param '{spec.name}' is required")
    return env
