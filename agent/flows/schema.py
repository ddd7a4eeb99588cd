"""The flow file format: a JSON Schema, a YAML/JSON loader and the ``Flow``/``Step`` types.

A file holds ``flow: {name, description, env, setup, steps, teardown, timeout}``; a step
is ``{id, name, action, config, assert, output, when, retry, timeout, on_error,
report_values}``. Every error names the step (id and position) and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from agent.flows.actions import ACTIONS
from agent.flows.durations import DURATION_PATTERN, optional_duration, parse_duration
from agent.flows.errors import ExpressionError, FlowError, FlowSchemaError
from agent.flows.expressions import compile_expression
from agent.flows.layout import normalize
from agent.flows.outputs import check_output_path

__all__ = ["Flow", "FlowError", "RetryPolicy", "Step", "load_flow", "load_flow_file",
           "parse_flow_text"]

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_FILE_BYTES = 1024 * 1024
MAX_RETRY_DELAY = 300.0
MAX_MESSAGE = 240
NESTED_STEP_KEYS = ("then", "else", "steps")
DURATION = {"type": ["number", "string"], "minimum": 0, "pattern": DURATION_PATTERN}


def _action_rules() -> list[dict[str, Any]]:
    rules = []
    for name, spec in sorted(ACTIONS.items()):
        # A typo inside an action's config must fail loudly: additionalProperties is false.
        config = {"type": "object", "additionalProperties": False, **spec.config_schema}
        then: dict[str, Any] = {"properties": {"config": config}}
        if spec.config_schema.get("required"):
            then["required"] = ["config"]
        rules.append({"if": {"properties": {"action": {"const": name}}, "required": ["action"]},
                      "then": then})
    return rules


STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "action"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": ID_PATTERN},
        "name": {"type": "string"},
        "action": {"enum": sorted(ACTIONS)},
        "config": {"type": "object"},
        "assert": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "output": {"type": "object", "propertyNames": {"pattern": ID_PATTERN},
                   "additionalProperties": {"type": "string", "minLength": 1}},
        "when": {"type": ["string", "boolean"]},
        "retry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                           "delay": DURATION, "backoff": {"enum": ["fixed", "exponential"]}},
        },
        "timeout": DURATION,
        "on_error": {"enum": ["fail", "continue"]},
        "report_values": {"type": "boolean"},
    },
    "allOf": _action_rules(),
}
FLOW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["flow"],
    "additionalProperties": False,
    "properties": {"flow": {
        "type": "object",
        "required": ["name", "steps"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "version": {"type": ["string", "number"]},
            "env": {"type": "object", "propertyNames": {"pattern": ID_PATTERN}},
            "setup": {"$ref": "#/$defs/steps"},
            "steps": {"$ref": "#/$defs/steps"},
            "teardown": {"$ref": "#/$defs/steps"},
            "timeout": DURATION,
        },
    }},
    "$defs": {"step": STEP_SCHEMA, "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}}},
}
_VALIDATOR = jsonschema.Draft202012Validator(FLOW_SCHEMA)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing step is tried and how long to wait in between."""

    max_attempts: int = 1
    delay: float = 0.0
    backoff: str = "fixed"

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before try number ``attempt`` (2, 3, ...)."""
        factor = 2 ** (attempt - 2) if self.backoff == "exponential" else 1
        return min(self.delay * factor, MAX_RETRY_DELAY)


@dataclass(frozen=True)
class Step:
    """One validated step; nested steps stay in ``config`` as mappings until they run."""

    id: str
    action: str
    name: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    assertions: tuple[str, ...] = ()
    output: Mapping[str, str] = field(default_factory=dict)
    when: str | bool | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = None
    on_error: str = "fail"
    report_values: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        """Build from an already validated mapping."""
        retry = data.get("retry") or {}
        return cls(
            id=data["id"], action=data["action"], name=data.get("name", ""),
            config=data.get("config") or {}, assertions=tuple(data.get("assert") or ()),
            output=data.get("output") or {}, when=data.get("when"),
            retry=RetryPolicy(int(retry.get("max_attempts", 1)),
                              parse_duration(retry.get("delay", 0), "retry.delay"),
                              retry.get("backoff", "fixed")),
            timeout=optional_duration(data.get("timeout"), "timeout"),
            on_error=data.get("on_error", "fail"), report_values=bool(data.get("report_values")),
        )


@dataclass(frozen=True)
class Flow:
    """A validated flow definition."""

    name: str
    description: str = ""
    env: Mapping[str, Any] = field(default_factory=dict)
    setup: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    teardown: tuple[Step, ...] = ()
    timeout: float | None = None
    #: Keys kept but not run (TestMesh's ``suite``, ``tags``, ``collection``...).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Unknown keys that were ignored, reported as a ``flow_warning`` event.
    warnings: tuple[str, ...] = ()


def _location(path: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def describe_error(document: Any, path: list[Any], message: str) -> str:
    """Name the innermost step on ``path`` (id and position) and the field inside it."""
    node, step_at, step_id = document, None, None
    for depth, part in enumerate(path):
        parent, node = node, node[part]
        is_step = isinstance(node, dict) and ("id" in node or "action" in node)
        if isinstance(parent, list) and is_step:
            step_at, step_id = depth + 1, node.get("id")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    if step_at is None:
        return f"{_location(path) or 'document'}: {message}"
    name = f"step {step_id!r}" if isinstance(step_id, str) else "step"
    fieldname = _location(path[step_at:])
    where = f"{name} ({_location(path[:step_at])})"
    return f"{where}: {fieldname}: {message}" if fieldname else f"{where}: {message}"


def iter_steps(steps: Any, path: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """Yield every step (nested ones too) with its path in the document."""
    for index, step in enumerate(steps or []):
        yield from _visit(step, [*path, index])


def _visit(step: dict[str, Any], here: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    yield step, here
    config = step.get("config") or {}
    for key in NESTED_STEP_KEYS:
        if isinstance(config.get(key), list):
            yield from iter_steps(config[key], [*here, "config", key])
    branches = config.get("branches") if step["action"] == "parallel" else None
    for index, branch in enumerate(branches or []):
        where = [*here, "config", "branches", index]
        if isinstance(branch, list):
            yield from iter_steps(branch, where)
        else:
            yield from _visit(branch, where)


def _expressions(step: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    for index, expression in enumerate(step.get("assert") or []):
        yield ["assert", index], expression
    if isinstance(step.get("when"), str):
        yield ["when"], step["when"]
    config = step.get("config") or {}
    for key in ACTIONS[step["action"]].expression_keys:
        value = config.get(key)
        items = (value.items() if isinstance(value, dict) else enumerate(value)
                 if isinstance(value, list) else [(None, value)])
        for sub, expression in items:
            if isinstance(expression, str):
                yield ["config", key, *([] if sub is None else [sub])], expression


def _semantic_errors(document: dict[str, Any]) -> list[str]:
    errors, seen = [], {}
    for section in ("setup", "steps", "teardown"):
        for step, path in iter_steps(document["flow"].get(section), ["flow", section]):
            if step["id"] in seen:
                errors.append(describe_error(document, [*path, "id"],
                                             f"duplicate step id (first at {seen[step['id']]})"))
            seen.setdefault(step["id"], _location(path))
            for field_path, expression in _expressions(step):
                try:
                    compile_expression(expression)
                except ExpressionError as exc:
                    errors.append(describe_error(document, [*path, *field_path], str(exc)))
            for name, output_path in (step.get("output") or {}).items():
                try:
                    check_output_path(output_path)
                except ExpressionError as exc:
                    errors.append(describe_error(document, [*path, "output", name], str(exc)))
    return errors


def load_flow(document: Any) -> Flow:
    """Validate a decoded document and return the :class:`Flow`.

    The layout is normalized first (:mod:`agent.flows.layout`): a bare ``{name,
    steps, ...}`` (TestMesh's form) is accepted, metadata is kept, steps without
    ``id`` are numbered and unknown keys outside ``config`` become warnings.

    :raises FlowSchemaError: listing every problem, each naming its step and field.
    """
    document, warnings, metadata = normalize(document)
    found = sorted(_VALIDATOR.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    errors = [describe_error(document, list(e.absolute_path), _message(e)) for e in found]
    if errors:
        raise FlowSchemaError(errors)
    errors = _semantic_errors(document)
    if errors:
        raise FlowSchemaError(errors)
    body = document["flow"]
    steps = {key: tuple(Step.from_dict(s) for s in body.get(key) or ())
             for key in ("setup", "steps", "teardown")}
    return Flow(
        name=body["name"],
        description=body.get("description", ""),
        env=body.get("env") or {},
        timeout=optional_duration(body.get("timeout"), "timeout"),
        metadata=metadata, warnings=tuple(warnings), **steps,
    )


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, except an unknown config key names the allowed ones."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and path and path[-1] == "config":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return (f"unknown config key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} (allowed: {', '.join(allowed)})")
    return error.message


def parse_flow_text(text: str, source: str = "<flow>") -> Flow:
    """Parse YAML (or JSON, for ``*.json`` sources) and validate it."""
    try:
        document = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if source.endswith(".json") else "YAML"
        reason = " ".join(str(exc).split())[:MAX_MESSAGE] or type(exc).__name__
        raise FlowSchemaError([f"{source}: not valid {kind}: {reason}"]) from None
    return load_flow(document)


def load_flow_file(path: str) -> Flow:
    """Read, parse and validate the flow file at ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise FlowError(f"cannot read flow file {path}: {reason}") from None
    if len(text) > MAX_FILE_BYTES:
        raise FlowError(f"flow file {path} is larger than {MAX_FILE_BYTES} bytes")
    return parse_flow_text(text, path)
