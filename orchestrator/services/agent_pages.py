"""One page of the fleet, filtered by status, tag and name, for the dashboard at any size.

``list_agents`` loads every full row (manifests included); a page of a
5,000-agent fleet instead reads only the columns the filters need, then loads
the full rows of the one page it shows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.extensions import db
from orchestrator.models import Agent, utcnow

DEFAULT_AGENTS_PER_PAGE = 50
MAX_AGENTS_PER_PAGE = 200
AGENT_STATUSES = ("online", "draining", "offline")


def agent_status(agent: Any, now: datetime | None = None) -> str:
    """``draining`` (online but taking no new work), ``online`` or ``offline``.

    ``agent`` is a model or a row with ``online_until`` and ``draining``:
    ``Agent.is_online`` is the one liveness rule either way.
    """
    if not Agent.is_online(agent, now):
        return "offline"
    return "draining" if agent.draining else "online"


@dataclass
class AgentPage:
    agents: list[Agent]
    statuses: dict[str, str]
    total: int
    page: int
    pages: int
    counts: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


def page_agents(status: str | None = None, tag: str | None = None, name: str | None = None,
                page: int = 1, per_page: int = DEFAULT_AGENTS_PER_PAGE) -> AgentPage:
    """The current tenant's agents matching every filter given, by name, one page of them.

    ``counts`` are per status among the agents matching the tag and name
    filters (so the status chips say what each would show); ``tags`` are every
    tag of the fleet, for the filter's choices.
    """
    now = utcnow()
    # Tags as their JSON text: decoding 5,000 lists costs more than the rest of the page,
    # and fleets repeat a few distinct tag sets. Liveness is Agent.is_online's rule in SQL.
    query = db.select(Agent.id, sa.type_coerce(Agent.tags, sa.Text).label("tags"),
                      (Agent.online_until > now).label("online"), Agent.draining)
    if name:
        query = query.where(Agent.name.contains(name, autoescape=True))
    rows = db.session.execute(query.order_by(Agent.name)).all()
    tag_sets = {raw: set(json.loads(raw) if raw else []) for raw in {row.tags for row in rows}}
    all_tags = sorted(set().union(*tag_sets.values()))
    if tag:
        rows = [row for row in rows if tag in tag_sets[row.tags]]
    statuses = {row.id: ("draining" if row.draining else "online") if row.online else "offline"
                for row in rows}
    counts = Counter(statuses.values())
    if status:
        rows = [row for row in rows if statuses[row.id] == status]
    per_page = min(max(per_page, 1), MAX_AGENTS_PER_PAGE)
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(page, 1), pages)
    ids = [row.id for row in rows[(page - 1) * per_page: page * per_page]]
    full = {a.id: a for a in db.session.execute(
        db.select(Agent).where(Agent.id.in_(ids))).scalars()} if ids else {}
    return AgentPage(agents=[full[i] for i in ids if i in full],
                     statuses={i: statuses[i] for i in ids}, total=len(rows), page=page,
                     pages=pages, counts={s: counts.get(s, 0) for s in AGENT_STATUSES},
                     tags=all_tags)


def script_entries(agent: Agent) -> list[dict[str, Any]]:
    """The agent's whitelisted scripts as reported, each with its declared ``params`` list."""
    return [{"name": s.get("name"), "description": s.get("description"),
             "params": [p for p in (s.get("params") or []) if isinstance(p, dict)]}
            for s in (agent.manifest or {}).get("scripts", []) if isinstance(s, dict)]


def flow_entries(agent: Agent) -> list[dict[str, Any]]:
    return [f for f in (agent.manifest or {}).get("flows", []) if isinstance(f, dict)]
