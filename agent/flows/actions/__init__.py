"""The action registry: every action name a flow step may use, mapped to its :class:`ActionSpec`."""

from __future__ import annotations

from agent.flows.actions import control, database, http, redis_actions, script, utility, waits
from agent.flows.context import ActionSpec

ACTIONS: dict[str, ActionSpec] = {
    **http.ACTIONS,
    **database.ACTIONS,
    **redis_actions.ACTIONS,
    **control.ACTIONS,
    **waits.ACTIONS,
    **utility.ACTIONS,
    **script.ACTIONS,
}

__all__ = ["ACTIONS", "ActionSpec"]
