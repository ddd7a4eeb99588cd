"""/trigger-script and /jobs: run a script on an agent, read, list and cancel jobs."""

from __future__ import annotations

from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.api.fanouts import fanout_answer
from orchestrator.models import Scope
from orchestrator.schemas.jobs import (
    JobLogsArgsSchema,
    JobPageSchema,
    JobQueryArgsSchema,
    JobSchema,
    JobWaitArgsSchema,
    TriggerSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services import dispatch, job_output, jobs, targets
from orchestrator.services.fanout import FanoutOutcome

blp = Blueprint("jobs", __name__, description="Trigger scripts and follow their jobs")
BEARER = [{"bearerAuth": []}]


def trigger_answer(outcome: dispatch.TriggerOutcome | FanoutOutcome) -> Any:
    """202 ``{job_id, status}`` for a queued job; the full job when it was waited for
    (200 when finished, 202 when the wait ran out) or already existed (200); a fan-out's
    ``{fanout_id, jobs, skipped}`` (``POST /fanouts``'s answer)."""
    if isinstance(outcome, FanoutOutcome):
        return fanout_answer(outcome)
    job = outcome.job
    if not outcome.created:
        return job, 200
    if outcome.waited:
        return job, 200 if job.is_terminal else 202
    return {"id": job.id, "status": job.status}, 202


@blp.route("/trigger-script")
class TriggerScript(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(TriggerSchema)
    @blp.response(202, JobSchema, description="Queued: `{job_id, status}` (async), or the "
                                              "unfinished job when a synchronous wait ran out")
    @blp.alt_response(200, schema=JobSchema,
                      description="The finished job (async_exec false), or the existing job "
                                  "of a repeated idempotency_key")
    @blp.alt_response(403, description="script_not_in_manifest or flow_not_in_manifest")
    @blp.alt_response(404, description="agent_not_found")
    @blp.alt_response(422, description="no_targets (fan-out) or no_pool_agent (pool)")
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> Any:
        """Run a whitelisted script (``run_script``) or flow (``run_flow``) on an agent.

        The script or flow must be in the agent's last reported manifest. ``params``
        reach a script as environment variables; ``variables`` are a flow's. Jobs for
        an offline agent wait (up to ``queue_ttl`` when given). Needs scope ``operator``.

        Instead of ``agent``: ``pool`` (a tag) queues one job that the first free
        agent carrying the tag takes; ``agents`` and/or ``tags`` (or ``stages``)
        fan out, one job per agent, and answer ``POST /fanouts``'s
        ``{fanout_id, jobs, skipped}``.
        """
        return trigger_answer(targets.trigger(current_principal(), data))


@blp.route("/jobs")
class JobList(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(JobQueryArgsSchema, location="query")
    @blp.response(200, JobPageSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first, with filters; page with ``cursor`` = ``next_cursor``.

        Items leave out stdout/stderr: read them with ``GET /jobs/{job_id}``.
        """
        return jobs.list_jobs(args)


@blp.route("/jobs/<job_id>")
class JobById(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(JobWaitArgsSchema, location="query")
    @blp.response(200, JobSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any], job_id: str) -> Any:
        """One job with its result; stdout/stderr grow while it runs.

        ``wait=S`` (0 < S <= 60) long-polls: the answer comes once the job is
        terminal or after S seconds, whichever is first.
        """
        if args.get("wait"):
            return job_output.wait_for_job(job_id, args["wait"])
        return jobs.get_job(job_id)


SSE_DOC = {"200": {"description": "The output so far (text), or with follow=true an "
                                  "event stream: output, step, status, end events.",
                   "content": {"text/plain": {"schema": {"type": "string"}},
                               "text/event-stream": {"schema": {"type": "string"}}}}}


@blp.route("/jobs/<job_id>/logs")
class JobLogs(MethodView):
    @blp.doc(security=BEARER, responses=SSE_DOC)
    @blp.arguments(JobLogsArgsSchema, location="query")
    @blp.alt_response(404, description="job_not_found")
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any], job_id: str) -> Response:
        """A job's output: the text so far, or followed live as Server-Sent Events.

        With ``follow=true``: ``output`` events (``{stream, offset, data}``),
        ``step`` events for flows, ``status`` on a change, a final ``end``
        (``{status, exit_code, error, duration_ms}``), ``: keepalive`` while idle.
        Reconnect with ``Last-Event-ID`` (or ``after``) to resume without gaps.
        """
        if not args["follow"]:
            return Response(job_output.output_text(job_id, args["stream"]),
                            mimetype="text/plain", content_type="text/plain; charset=utf-8")
        after = args.get("after") or request.headers.get("Last-Event-ID")
        events = job_output.follow(job_id, after)
        return Response(stream_with_context(events), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@blp.route("/jobs/<job_id>/cancel")
class CancelJob(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, JobSchema, description="Cancelled (it was pending)")
    @blp.alt_response(202, schema=JobSchema,
                      description="Running: its agent has been asked to kill it")
    @blp.alt_response(409, description="job_finished: the job already ended")
    @require_scope(Scope.OPERATOR)
    def post(self, job_id: str) -> tuple[Any, int]:
        """Cancel a job: at once when pending, by killing its process group when running."""
        job, cancelled = jobs.cancel_job(job_id)
        return job, 200 if cancelled else 202
