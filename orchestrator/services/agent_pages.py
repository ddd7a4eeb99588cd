"""One page of the fleet, filtered by status, tag and name, for the dashboard at any size.

``list_agents`` loads every full row (manifests included); a page of a
5,000-agent fleet instead reads only the columns the filters need, then loads
the full rows of the one page it shows.
"""

from __future__ import annotations

import json
import math
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
    tag of the fleet, for the filter's choices. Everything is counted and paged
    in SQL: the page never reads more than ``per_page`` agents.
    """
    now = utcnow()
    tags_text = sa.cast(Agent.tags, sa.Text)
    # Fleets repeat a few distinct tag sets: read those, then filter on their text.
    tag_sets = {raw: set(json.loads(raw) if raw else []) for raw in db.session.execute(
        db.select(tags_text).distinct()).scalars()}
    base = db.select(Agent.id)
    if name:
        base = base.where(Agent.name.contains(name, autoescape=True))
    if tag:
        base = base.where(tags_text.in_([raw for raw, found in tag_sets.items() if tag in found]))
    # Agent.is_online's rule (online_until in the future), as SQL.
    online = sa.and_(Agent.online_until.is_not(None), Agent.online_until > now)
    status_of = sa.case((sa.and_(online, Agent.draining.is_(True)), "draining"),
                        (online, "online"), else_="offline")
    counts = dict.fromkeys(AGENT_STATUSES, 0)
    for found, n in db.session.execute(
            base.with_only_columns(status_of, sa.func.count()).group_by(status_of)):
        counts[found] = n
    query = base.where(status_of == status) if status in counts else base
    total = counts[status] if status in counts else sum(counts.values())
    per_page = min(max(per_page, 1), MAX_AGENTS_PER_PAGE)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(page, 1), pages)
    ids = list(db.session.execute(query.order_by(Agent.name).offset((page - 1) * per_page)
                                  .limit(per_page)).scalars())
    rows = list(db.session.execute(
        db.select(Agent).where(Agent.id.in_(ids)).order_by(Agent.name)).scalars()) if ids else []
    return AgentPage(agents=rows, statuses={a.id: agent_status(a, now) for a in rows},
                     total=total, page=page, pages=pages, counts=counts,
                     tags=sorted(set().union(*tag_sets.values())))


def script_entries(agent: Agent) -> list[dict[str, Any]]:
    """The agent's whitelisted scripts as reported, each with its declared ``params`` list."""
    return [{"name": s.get("name"), "description": s.get("description"),
             "params": [p for p in (s.get("params") or []) if isinstance(p, dict)]}
            for s in (agent.manifest or {}).get("scripts", []) if isinstance(s, dict)]


def flow_entries(agent: Agent) -> list[dict[str, Any]]:
    return [f for f in (agent.manifest or {}).get("flows", []) if isinstance(f, dict)]
