"""Inline flow dispatch: run a flow definition sent with the request on an opted-in agent.

TestMesh's "Programmatic Dispatch": ``POST /agent/dispatch {flow_id?, definition,
variables}``. The manifest stays the default gate: only agents that report
``inline_flows: true`` (``ALLOW_INLINE_FLOWS=true``) receive such jobs, and the agent
itself checks again (and refuses ``script`` steps unless it also allows them). The
definition travels in the job's ``params`` (a flow job has no script params) and
reaches the agent in the assignment's ``definition``.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import Forbidden, ValidationFailed
from orchestrator.models import Agent, Job, JobStatus, utcnow
from orchestrator.security import Principal
from orchestrator.services import agents
from orchestrator.services.dispatch import TriggerOutcome, submit

#: Where a flow job keeps its inline definition (``dispatch.assignment`` forwards it).
DEFINITION_KEY = "definition"
MAX_DEFINITION_CHARS = 256 * 1024
DEFAULT_INLINE_TIMEOUT = 300


def allows_inline(agent: Agent) -> bool:
    """True when the agent's last report opted in to inline flows."""
    return bool((agent.manifest or {}).get("inline_flows"))


def flow_name(definition: dict[str, Any], flow_id: str | None) -> str:
    """A name for the job: the definition's ``name`` (top level or under ``flow``)."""
    body = definition.get("flow") if isinstance(definition.get("flow"), dict) else definition
    name = body.get("name") or definition.get("name") or flow_id or "inline"
    return str(name)[:255]


def check_definition(definition: Any) -> dict[str, Any]:
    """A JSON object of bounded size with steps; the agent validates it fully."""
    if not isinstance(definition, dict):
        raise ValidationFailed("definition must be a flow object.", error_code="invalid_flow",
                               details={"field": "definition"})
    if len(json.dumps(definition)) > MAX_DEFINITION_CHARS:
        raise ValidationFailed(f"definition is larger than {MAX_DEFINITION_CHARS} characters.",
                               error_code="invalid_flow", details={"field": "definition"})
    body = definition.get("flow") if isinstance(definition.get("flow"), dict) else definition
    if not isinstance(body.get("steps", definition.get("steps")), list):
        raise ValidationFailed("definition has no steps list.", error_code="invalid_flow",
                               details={"field": "definition.steps"})
    return definition


def pick_agent(name: str | None) -> Agent:
    """The named agent (403 unless it opted in), else the first online agent that did."""
    if name:
        agent = agents.get_agent(name)
        if not allows_inline(agent):
            raise Forbidden(f"Agent '{agent.name}' does not accept inline flows "
                            "(start it with ALLOW_INLINE_FLOWS=true).",
                            error_code="inline_flows_not_allowed", details={"agent": agent.name})
        return agent
    for agent in agents.list_agents():
        if allows_inline(agent) and agent.is_online():
            return agent
    raise ValidationFailed("No online agent accepts inline flows (ALLOW_INLINE_FLOWS=true).",
                           error_code="no_inline_agent", details={})


def dispatch_inline(principal: Principal, data: dict[str, Any]) -> TriggerOutcome:
    """Create and queue a flow job carrying ``definition``."""
    definition = check_definition(data.get("definition"))
    agent = pick_agent(data.get("agent"))
    flow_id = data.get("flow_id")
    now = utcnow()
    params: dict[str, Any] = {DEFINITION_KEY: definition}
    if flow_id:
        params["flow_id"] = flow_id
    job = Job(
        tenant_id=principal.tenant_id, agent_id=agent.id, agent_name=agent.name,
        script=flow_name(definition, flow_id), kind="flow",
        variables=dict(data.get("variables") or {}), params=params,
        status=JobStatus.PENDING.value, timeout=data.get("timeout") or DEFAULT_INLINE_TIMEOUT,
        created_by=principal.user_id, created_at=now, stdout="", stderr="", truncated={},
    )
    return submit(job)
