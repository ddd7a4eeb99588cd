"""The hub's side of the agent protocol, exactly as ``agent/protocol.py`` documents it.

``POST /register-agent`` also serves users registering an agent by hand (the
product docs' ``{agent_name, url, api_key, tags}``): it takes an agent key or
an operator credential. The other endpoints take an agent key (or an admin
credential); an agent key acts only as the agent it is bound to.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from orchestrator.api import Blueprint, committed
from orchestrator.api.client_socket import hang_up_check
from orchestrator.models import Scope
from orchestrator.schemas.agents import (
    AgentNameSchema,
    HeartbeatResultSchema,
    HeartbeatSchema,
    OkSchema,
    OutputResultSchema,
    OutputSchema,
    PollResultSchema,
    PollSchema,
    RegisterAgentResultSchema,
    RegisterAgentSchema,
    ResultSchema,
    StartResultSchema,
)
from orchestrator.schemas.job_steps import EventsResultSchema, EventsSchema
from orchestrator.security import current_principal, require_scope
from orchestrator.services import agents, dispatch, jobs, leases

blp = Blueprint("agent_protocol", __name__, description="Agent protocol (used by agents)")
BEARER = [{"bearerAuth": []}]


@blp.route("/register-agent")
class RegisterAgent(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(RegisterAgentSchema)
    @blp.response(200, RegisterAgentResultSchema)
    @require_scope(Scope.AGENT, Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register an agent (or update it): upsert by name within the tenant.

        Agents call it at start with their manifest; users may call it with
        ``{agent_name, url, api_key, tags}``. An agent-scope key is bound to
        the name it first registers and may never act as another agent (403).
        Needs scope ``agent`` or ``operator``.
        """
        return agents.register_agent(current_principal(), data)


@blp.route("/agent/heartbeat")
class Heartbeat(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(HeartbeatSchema)
    @blp.response(200, HeartbeatResultSchema)
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Agent heartbeat: manifest, running jobs (their leases are renewed), draining.

        Answers ``cancel`` commands for running jobs that must stop.
        """
        return committed(leases.record_heartbeat(current_principal(), data))


@blp.route("/agent/poll")
class Poll(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(PollSchema)
    @blp.response(200, PollResultSchema)
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Long-poll for jobs: held up to ``wait`` (capped by POLL_WAIT) until a job is queued.

        Every returned job is leased to the agent until ``lease_expires_at``.
        """
        return dispatch.poll(current_principal(), data["agent_name"], data["max_jobs"],
                             data["wait"], hang_up_check(request.environ))


@blp.route("/agent/jobs/<job_id>/start")
class StartJob(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(AgentNameSchema)
    @blp.response(200, StartResultSchema)
    @blp.alt_response(409, description="job_not_runnable: do not run this job")
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any], job_id: str) -> dict[str, str]:
        """Acknowledge the start of a leased job."""
        return committed(jobs.start_job(current_principal(), job_id, data["agent_name"]))


@blp.route("/agent/jobs/<job_id>/output")
class JobOutput(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(OutputSchema)
    @blp.response(200, OutputResultSchema)
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any], job_id: str) -> dict[str, bool]:
        """Upload output chunks at character offsets (idempotent); renews the job's lease.

        ``cancel: true`` asks the agent to kill the job now.
        """
        return committed(jobs.record_output(current_principal(), job_id, data))


@blp.route("/agent/jobs/<job_id>/events")
class JobEvents(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(EventsSchema)
    @blp.response(200, EventsResultSchema)
    @blp.alt_response(409, description="job_not_leased, or job_not_a_flow")
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any], job_id: str) -> dict[str, bool]:
        """Upload a flow job's step events (idempotent by ``seq``); renews the job's lease.

        ``cancel: true`` asks the agent to cancel the flow now.
        """
        return committed(jobs.record_events(current_principal(), job_id, data))


@blp.route("/agent/jobs/<job_id>/result")
class JobResult(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ResultSchema)
    @blp.response(200, OkSchema)
    @blp.alt_response(409, description="job_not_leased: the job is not this agent's")
    @require_scope(Scope.AGENT)
    def post(self, data: dict[str, Any], job_id: str) -> dict[str, str]:
        """Report a job's final result. Idempotent: the first accepted result wins."""
        return committed(jobs.record_result(current_principal(), job_id, data))
