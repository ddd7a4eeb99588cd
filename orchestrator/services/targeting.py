"""Target selection: the one rule for which agents a fan-out or a schedule fire may use.

Fan-outs (``POST /fanouts``, ``/trigger-script`` with agents/tags/stages) and
schedules over several agents both call ``eligible``: an agent named or
matched (carrying every tag) gets a job unless it is offline, draining or
paused (with ``only_online``) or its manifest lacks what is run. The reason
an agent was passed over is one of the constants below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.models import Agent

OFFLINE = "offline"
DRAINING = "draining"
PAUSED = "paused"
NOT_FOUND = "not_found"
NOT_IN_MANIFEST = "script_not_in_manifest"
FLOW_NOT_IN_MANIFEST = "flow_not_in_manifest"


@dataclass
class Eligible:
    """The agents that may run the work now and the ones passed over, with why."""

    agents: list[Agent] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def match_agents(fleet: list[Agent], names: list[str] | None,
                 tags: list[str] | None) -> tuple[list[Agent], list[str]]:
    """Agents named in ``names`` (in that order) plus those carrying every tag of ``tags``.

    Returns the matches (no duplicates) and the names no agent has.
    """
    by_name = {agent.name: agent for agent in fleet}
    chosen: dict[str, Agent] = {}
    unknown: list[str] = []
    for name in names or []:
        if name in by_name:
            chosen.setdefault(name, by_name[name])
        elif name not in unknown:
            unknown.append(name)
    if tags:
        wanted = set(tags)
        for agent in fleet:
            if wanted <= set(agent.tags or ()):
                chosen.setdefault(agent.name, agent)
    return list(chosen.values()), unknown


def lists(agent: Agent, kind: str, name: str) -> bool:
    """Whether ``agent``'s manifest whitelists the script (or, for ``kind`` flow, the flow)."""
    return name in (agent.flow_names() if kind == "flow" else agent.script_names())


def skip_reason(agent: Agent, kind: str, name: str, only_online: bool = True) -> str | None:
    """Why ``agent`` cannot take the script (or flow) now, or None when it can."""
    if only_online and not agent.is_online():
        return OFFLINE
    if only_online and (agent.draining or agent.drain_requested_at is not None):
        return DRAINING
    if only_online and agent.is_paused():
        return PAUSED
    if not lists(agent, kind, name):
        return FLOW_NOT_IN_MANIFEST if kind == "flow" else NOT_IN_MANIFEST
    return None


def eligible(fleet: list[Agent], names: list[str] | None, tags: list[str] | None,
             kind: str, name: str, *, only_online: bool = True,
             taken: set[str] | None = None) -> Eligible:
    """The agents of ``fleet`` selected by ``names``/``tags`` that may run ``name`` now.

    :param taken: names already chosen elsewhere (an earlier stage): left out, and
        added to as agents are chosen.
    """
    matched, unknown = match_agents(fleet, names, tags)
    result = Eligible(skipped=[{"agent": n, "reason": NOT_FOUND} for n in unknown])
    taken = set() if taken is None else taken
    for agent in matched:
        if agent.name in taken:
            continue
        taken.add(agent.name)
        reason = skip_reason(agent, kind, name, only_online)
        if reason:
            result.skipped.append({"agent": agent.name, "reason": reason})
        else:
            result.agents.append(agent)
    return result
