"""/agents, /agents/{name} and /get-scripts: the fleet as users see it."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.agents import (
    AgentQueryArgsSchema,
    AgentSchema,
    ScriptsQuerySchema,
    ScriptsSchema,
)
from orchestrator.security import require_scope
from orchestrator.services import agents, dispatch

blp = Blueprint("agents", __name__, description="Agents and their scripts")
BEARER = [{"bearerAuth": []}]
AGENT_SCHEMA = AgentSchema()

#: GET /agents answers an object keyed by agent name (the product docs' jq relies on it).
AGENT_MAP_DOC = {"200": {
    "description": "Every agent of the tenant, keyed by name.",
    "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": {"$ref": "#/components/schemas/Agent"},
        "example": {"prod-server-1": {"status": "online", "tags": ["production"],
                                      "scripts": ["backup.sh"], "running_jobs": []}},
    }}},
}}


@blp.route("/agents")
class AgentList(MethodView):
    @blp.doc(security=BEARER, responses=AGENT_MAP_DOC)
    @blp.arguments(AgentQueryArgsSchema, location="query")
    @blp.response(200)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, str]) -> dict[str, Any]:
        """Every agent with its health, keyed by agent name; ``tag``, ``status``, ``name`` filter.

        ``status`` is ``online`` while heartbeats arrive (OFFLINE_AFTER_MISSED
        intervals may be missed), ``offline`` otherwise.
        """
        return {agent.name: AGENT_SCHEMA.dump(agent) for agent in agents.list_agents(**args)}


@blp.route("/agents/<name>")
class AgentByName(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, AgentSchema)
    @require_scope(Scope.READ)
    def get(self, name: str) -> Any:
        """One agent by name."""
        return agents.get_agent(name)

    @blp.doc(security=BEARER)
    @blp.response(204)
    @require_scope(Scope.OPERATOR)
    def delete(self, name: str) -> None:
        """Deregister an agent.

        Its queued jobs are cancelled and its running jobs failed, both with
        error ``agent_deregistered``. An agent still running registers again
        on its next heartbeat.
        """
        dispatch.deregister_agent(name)


@blp.route("/get-scripts")
class AgentScripts(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ScriptsQuerySchema, location="query")
    @blp.response(200, ScriptsSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, str]) -> dict[str, Any]:
        """The scripts (and flows) an agent's last reported manifest allows."""
        return agents.agent_scripts(args["agent"])
