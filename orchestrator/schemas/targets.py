"""Target fields shared by ``POST /trigger-script`` and ``POST /fanouts``: which agents,
how many at once, how many errors, canary stages."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orchestrator.schemas.locks import LockFieldsSchema

LIMIT_RE = re.compile(r"^\s*(\d{1,6})\s*(%?)\s*$")
MAX_TARGETS = 10000
FANOUT_FIELDS = ("agents", "tags", "stages")


class CountOrPercent(fields.Field):
    """A count (``3``, ``"3"``) or a share of the targets (``"25%"``); loads as ``"3"`` /
    ``"25%"``."""

    def __init__(self, *, minimum: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.metadata.setdefault("oneOf", [{"type": "integer"}, {"type": "string"}])

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        match = LIMIT_RE.match(str(value)) if not isinstance(value, bool) else None
        if match is None:
            raise ValidationError('Give a count (e.g. 5) or a percentage (e.g. "25%").')
        number, percent = int(match.group(1)), match.group(2)
        if number < self.minimum or (percent and number > 100):
            raise ValidationError(f"Must be at least {self.minimum}"
                                  + (" and at most 100%." if percent else "."))
        return f"{number}{percent}"

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else str(value)


def max_concurrency_field(**metadata: Any) -> CountOrPercent:
    return CountOrPercent(minimum=1, allow_none=True, metadata={
        "description": "How many of the fan-out's jobs may run at once: a count or "
                       '"N%" of the targets (of the stage, with stages). The rest wait '
                       "in order.", "example": "25%", **metadata})


def max_errors_field() -> CountOrPercent:
    return CountOrPercent(minimum=0, allow_none=True, metadata={
        "description": "Once more jobs than this failed (failed, timeout, expired), the "
                       "jobs not started yet end `cancelled` with error `max_errors`; "
                       'running ones finish. A count or "N%" of the targets.',
        "example": 2})


class StageSchema(Schema):
    """One canary stage: its agents (names and/or tags) and its own concurrency."""

    agents = fields.List(fields.String(validate=validate.Length(1, 200)),
                         validate=validate.Length(1, MAX_TARGETS))
    tags = fields.List(fields.String(validate=validate.Length(1, 64)),
                       validate=validate.Length(1, 50))
    max_concurrency = max_concurrency_field()
    approve = fields.Boolean(load_default=None, allow_none=True, metadata={
        "description": "Before this stage starts, the fan-out waits in `awaiting_approval` "
                       "until POST /fanouts/{id}/approve."})
    bake_seconds = fields.Integer(allow_none=True, validate=validate.Range(0, 86400), metadata={
        "description": "Wait this long after this stage succeeded before the next starts."})
    verify = fields.String(allow_none=True, validate=validate.Length(1, 255), metadata={
        "description": "A script run on this stage's agents after it; a failing verify "
                       "fails the stage."})

    @validates_schema
    def needs_a_selector(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("agents") and not data.get("tags"):
            raise ValidationError("A stage needs agents and/or tags.", "agents")


class TargetFieldsSchema(LockFieldsSchema):
    """``agents`` and/or ``tags`` (or ``stages``) pick the fan-out's agents."""

    agents = fields.List(fields.String(validate=validate.Length(1, 200)),
                         validate=validate.Length(1, MAX_TARGETS), metadata={
                             "description": "Fan out to these agents (one job each).",
                             "example": ["prod-us-east", "prod-eu-west"]})
    tags = fields.List(fields.String(validate=validate.Length(1, 64)),
                       validate=validate.Length(1, 50), metadata={
                           "description": "Fan out to every agent carrying all these tags.",
                           "example": ["production"]})
    stages = fields.List(fields.Nested(StageSchema), validate=validate.Length(1, 20), metadata={
        "description": "Canary stages, in order: a stage starts only when every job of the "
                       "previous one succeeded; otherwise the rest is cancelled with error "
                       "`stage_failed`. Replaces agents/tags."})
    only_online = fields.Boolean(load_default=True, metadata={
        "description": "Skip agents that are offline or draining (reported in `skipped`)."})
    max_concurrency = max_concurrency_field()
    max_errors = max_errors_field()

    @validates_schema
    def stages_replace_selection(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("stages") and (data.get("agents") or data.get("tags")):
            raise ValidationError("Give either stages or agents/tags, not both.", "stages")


def is_fanout(data: dict[str, Any]) -> bool:
    """Whether a trigger's body selects several agents."""
    return any(data.get(name) for name in FANOUT_FIELDS)


def check_target(data: dict[str, Any]) -> None:
    """A trigger names exactly one kind of target: ``agent``, ``pool``, or a fan-out."""
    kinds = [name for name, given in (("agent", data.get("agent")), ("pool", data.get("pool")),
                                      ("agents", is_fanout(data))) if given]
    if len(kinds) != 1:
        raise ValidationError("Give exactly one target: agent, pool, or agents/tags/stages "
                              "(a fan-out).", "agent")
    if kinds[0] == "agent" and any(data.get(n) for n in ("max_concurrency", "max_errors")):
        raise ValidationError("max_concurrency and max_errors are for fan-outs.",
                              "max_concurrency")
