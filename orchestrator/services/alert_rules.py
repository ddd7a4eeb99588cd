"""Alert rules that tolerate noise: which subscribed integrations are told about an event.

An integration's ``config.rules`` refine its ``events``::

    {"events": ["job.failed"], "rules": [
        {"event": "job.failed", "after_consecutive": 3},          # the 3rd failure in a row
        {"event": "job.timeout", "within": "10m", "count": 5}]}   # 5 within 10 minutes

A rule counts per *problem key*: the schedule for a scheduled job, else the
script on its agent (``"per": "script"`` counts a script on every agent).
Once a rule has alerted, the problem is *open* and further alerts for it are
suppressed; the next success of the same key closes it and the integration
gets a ``job.recovered`` event (whatever its ``events``). ``schedule.missed``
always passes (the schedule itself raises it once per problem) and an
integration that receives it also receives ``schedule.recovered``.

``notify.fan_out_event`` calls ``filter_targets`` in the worker; the state
lives in ``alert_states`` rows (one per integration and key).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from orchestrator.extensions import db
from orchestrator.models import AlertState, Event, Integration, utcnow
from orchestrator.services.events import record_event

FAILURES = ("job.failed", "job.timeout")
SUCCESS = "job.succeeded"
RECOVERED = "job.recovered"
DURATION_RE = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RuleError(ValueError):
    """A rule that cannot be evaluated (reported when the integration is saved)."""


def seconds(text: Any) -> int:
    match = DURATION_RE.match(str(text))
    if match is None:
        raise RuleError(f"bad duration {text!r}: give seconds or e.g. '10m', '2h'")
    return int(match.group(1)) * UNITS[match.group(2)]


def check_rules(rules: Any) -> None:
    """Raise ``RuleError`` unless ``rules`` is a list of valid rule objects."""
    if not isinstance(rules, list):
        raise RuleError("rules must be a list")
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("event"), str):
            raise RuleError("each rule needs an 'event'")
        if "after_consecutive" in rule and not (isinstance(rule["after_consecutive"], int)
                                                and rule["after_consecutive"] >= 1):
            raise RuleError("after_consecutive must be a positive integer")
        if "within" in rule:
            seconds(rule["within"])
            if not isinstance(rule.get("count"), int) or rule["count"] < 1:
                raise RuleError("within needs a positive integer count")


def problem_key(rule: dict[str, Any], data: dict[str, Any]) -> str:
    if data.get("schedule_id") and rule.get("per") != "script":
        return f"schedule:{data['schedule_id']}"
    if rule.get("per") == "script":
        return f"script:{data.get('script')}"
    return f"script:{data.get('script')}@{data.get('agent')}"


def _rule_integrations(tenant_id: str) -> list[Integration]:
    rows = db.session.execute(db.select(Integration).where(
        Integration.tenant_id == tenant_id, Integration.enabled.is_(True))).scalars()
    return [row for row in rows if (row.config or {}).get("rules")]


def _state(row: Integration, key: str) -> AlertState:
    state = db.session.execute(db.select(AlertState).where(
        AlertState.integration_id == row.id, AlertState.key == key)
        .with_for_update()).scalar_one_or_none()
    if state is None:
        state = AlertState(tenant_id=row.tenant_id, integration_id=row.id, key=key,
                           failures=0, recent=[], open=False)
        db.session.add(state)
    return state


def _fires(rule: dict[str, Any], state: AlertState, now: datetime) -> bool:
    """Count this failure; whether the rule's threshold is reached now."""
    state.failures += 1
    if "within" in rule:
        since = now - timedelta(seconds=seconds(rule["within"]))
        recent = [t for t in state.recent if datetime.fromisoformat(t) >= since]
        state.recent = [*recent, now.isoformat()]
        return len(state.recent) >= rule["count"]
    return state.failures >= int(rule.get("after_consecutive") or 1)


def filter_targets(event: Event, targets: list[str]) -> list[str]:
    """The subscribed ``targets`` that receive ``event`` once rules are applied (and any
    integration the event is addressed to: a recovery)."""
    data = dict(event.payload or {})
    chosen = list(targets)
    if event.type == "schedule.recovered":
        chosen += _receivers_of(event.tenant_id, "schedule.missed")
    if event.type == RECOVERED and data.get("integration_id"):
        return [data["integration_id"]]
    now = utcnow()
    for row in _rule_integrations(event.tenant_id):
        for rule in row.config["rules"]:
            if event.type == rule["event"] and event.type in FAILURES:
                state = _state(row, problem_key(rule, data))
                passes = _fires(rule, state, now) and not state.open
                state.open = state.open or passes
                chosen = [t for t in chosen if t != row.id] + ([row.id] if passes else [])
            elif event.type == SUCCESS and rule["event"] in FAILURES:
                _recover(row, problem_key(rule, data), data)
    db.session.flush()
    return list(dict.fromkeys(chosen))


def _recover(row: Integration, key: str, data: dict[str, Any]) -> None:
    state = _state(row, key)
    if state.open:
        record_event(row.tenant_id, RECOVERED, subject=data.get("job_id"), payload={
            "integration_id": row.id, "key": key, "script": data.get("script"),
            "agent": data.get("agent"), "schedule_id": data.get("schedule_id"),
            "failures": state.failures})
    state.failures, state.recent, state.open = 0, [], False


def _receivers_of(tenant_id: str, event_type: str) -> list[str]:
    rows = db.session.execute(db.select(Integration).where(
        Integration.tenant_id == tenant_id, Integration.enabled.is_(True))).scalars()
    return [row.id for row in rows if event_type in row.events]
