"""What a ``POST /trigger-script`` targets: one agent, a pool, or a fan-out over many.

``agent`` runs on that agent (``dispatch``), ``pool`` on the first free
agent carrying the tag (``pools``), and ``agents`` (a list) and/or ``tags``
create a fan-out with one job per target agent (``fanout``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.security import Principal
from orchestrator.services import dispatch, fanout, pools


def trigger(principal: Principal, data: dict[str, Any]
            ) -> dispatch.TriggerOutcome | fanout.FanoutOutcome:
    """Route the request to the service for its kind of target (the schema checked that
    exactly one kind is given)."""
    if data.get("agent"):
        return dispatch.trigger_script(principal, data)
    if data.get("pool"):
        return pools.trigger_pool(principal, data)
    return fanout.create_fanout(principal, data)
