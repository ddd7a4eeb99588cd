"""The agent <-> hub wire protocol: the one place it is written down.

Both sides cite this module; the hub's agent endpoints live in
``orchestrator/api/agent_protocol.py`` and the agent's client in
``agent/client.py``. The agent never imports the orchestrator, and the
orchestrator does not import the agent: only the JSON below crosses.

Transport
=========
Plain HTTP(S), always opened by the agent (outbound only). Every request
carries ``Authorization: Bearer sm_live_...`` (an API key of scope ``agent``
or ``admin``) and ``Content-Type: application/json``. An agent-scope key is
bound to the agent name it first registers; any other name answers 403
``agent_name_mismatch`` (and a key never registered answers 403
``agent_key_unbound`` outside ``/register-agent``). A name the hub does not
know (e.g. deregistered) answers 404 ``agent_not_found``: register again.

Errors use the hub's single shape ``{"error": {"code", "message", "details"}}``.
The agent retries 429, 5xx and network errors with jittered exponential
backoff (5 s start, capped); 401 stops the agent with a clear message; other
4xx on a job endpoint mean "drop this job report" (it is logged).

Endpoints (all JSON)
====================
``POST /register-agent``
    ``{"agent_name", "tags": [..], "version", "workers", "hostname",
    "manifest": MANIFEST, "manifest_error": str|null,
    "heartbeat_interval": s, "running_jobs": ["job_..."]}`` ->
    ``{"status": "ok", "agent": name, "agent_id": "agt_...",
    "heartbeat_interval": s, "poll_wait": s}``. Idempotent: re-registering
    updates the row. (Users may also call it with the seed's shape
    ``{"agent_name", "url", "api_key", "tags"}``.) ``heartbeat_interval`` is
    the interval the agent uses (the agent sends it on every registration and
    heartbeat; after adopting the hub's, if shorter); the hub declares the
    agent offline after OFFLINE_AFTER_MISSED such intervals without a
    heartbeat or poll (the hub's own HEARTBEAT_INTERVAL when the agent does
    not say), and a running job whose agent stays silent that long (at least
    LEASE_SECONDS) fails ``agent_lost``. ``running_jobs`` (optional) lists
    the jobs the agent still owns (running, or result spooled and not yet
    accepted): every job the hub has ``running`` on this agent that is not
    listed fails at once with ``error: "agent_restarted"``.

``POST /agent/heartbeat``
    ``{"agent_name", "manifest": MANIFEST, "manifest_error": str|null,
    "running_jobs": ["job_..."], "draining": bool,
    "heartbeat_interval": s (optional)}`` ->
    ``{"status": "ok", "commands": [{"type": "cancel", "job_id": "job_..."}]}``.
    Renews the lease of every listed running job (a running job's lease is
    the agent's liveness window: without heartbeats or output uploads past
    it, the hub fails the job with ``error: "agent_lost"``). ``running_jobs``
    means what it means at registration: a running job of this agent that
    is not listed and started more than one ``heartbeat_interval`` ago fails
    at once with ``error: "agent_restarted"`` (younger ones may have started
    after the list was taken). ``cancel`` is
    sent for running jobs a user cancelled and for listed jobs the hub
    already finished (e.g. declared lost): kill their process group.

``POST /agent/poll``
    ``{"agent_name", "max_jobs": n, "wait": s}`` -> ``{"jobs": [ASSIGNMENT]}``.
    The hub holds the request up to ``wait`` seconds (capped by the hub's
    ``POLL_WAIT``) and answers as soon as a job is queued for this agent (or
    one of its pools). An empty list means "poll again"; a stopping hub
    answers every waiting poll at once with one. A job popped for a poll
    whose connection is already gone goes back to the head of the queue. Each returned job is
    leased to this agent until ``lease_expires_at``; without a start
    acknowledgement by then it goes back to the queue.

    ASSIGNMENT = ``{"job_id", "kind": "script", "script": name,
    "params": {str: str}, "timeout": s, "lease_expires_at": iso8601}``, or
    for a flow ``{"job_id", "kind": "flow", "flow": name, "variables": {..},
    "timeout": s, "lease_expires_at": iso8601}`` (``variables``: JSON values,
    the flow's trigger variables; the agent runs it with ``agent.flows``). An
    inline flow (``POST /agent/dispatch``) also carries ``"definition": {...}``.

``POST /agent/jobs/<job_id>/start``
    ``{"agent_name"}`` -> ``{"status": "running"}``. 409 ``job_not_runnable``
    when the job was cancelled (or re-leased elsewhere) meanwhile: the agent
    must not run it. The agent checks its own manifest before acknowledging;
    a script it does not whitelist is reported with ``/result`` as
    ``{"status": "failed", "error": "script_not_in_manifest: <name>"}``
    instead (a flow: ``flow_not_in_manifest: <name>``; an invalid flow file:
    ``invalid_flow: ...``).

``POST /agent/jobs/<job_id>/output``
    ``{"agent_name", "stdout": {"offset": n, "data": str},
    "stderr": {"offset": n, "data": str}}`` -> ``{"cancel": bool}``.
    Sent at least every second while a job runs and has new output. Offsets
    are character offsets into the captured stream, so a repeated chunk is
    ignored and uploads are idempotent. Also renews the job's lease.
    ``cancel: true`` tells the agent to kill the job's process group now
    (also answered when the hub already finished the job).

``POST /agent/jobs/<job_id>/events`` (flow jobs)
    ``{"agent_name", "events": [EVENT, ...]}`` -> ``{"cancel": bool}``.
    Sent at least every second while a flow runs and has new events, in
    ``seq`` order, at most MAX_EVENTS_PER_UPLOAD at a time. EVENT is what the
    flow engine emits (``agent/flows/events.py``): ``{"type", "seq", ...}``
    with type ``step_started``, ``step_completed`` | ``step_failed`` |
    ``step_skipped``, then ``flow_completed`` | ``flow_failed``. ``seq``
    numbers a run's events from 1, so uploads are idempotent: the hub skips an
    event it already applied. Steps carry only what may leave the agent
    (outputs named in ``output:``, assertion outcomes, durations, errors).
    Renews the job's lease; ``cancel`` as for ``/output``.

``POST /agent/jobs/<job_id>/result``
    ``{"agent_name", "status": "success"|"failed"|"timeout"|"cancelled",
    "exit_code": int|null, "stdout": str, "stderr": str,
    "truncated": {"stdout": bool, "stderr": bool}, "duration_ms": int,
    "started_at": iso8601, "error": str|null, "events": [EVENT] (flows,
    optional)}`` -> ``{"status": "ok"}``. A flow's result is ``success`` when
    the flow passed (else ``failed``, ``timeout`` or ``cancelled``), ``error``
    its failure message, ``stdout`` its ``log`` lines and step summary,
    ``exit_code`` null; ``events`` carries the events not yet acknowledged,
    which the hub applies (idempotently, by ``seq``) before the result.
    Idempotent: the first accepted result wins, a repeat answers 200 again.
    A result for a job not leased to this agent answers 409 ``job_not_leased``.
    The agent writes each result to its spool directory first and deletes
    it only after a 2xx, so a hub restart loses no result.

MANIFEST = ``{"scripts": [{"name", "description"}],
"flows": [{"name", "description"}]}`` as loaded and validated by the agent
(paths stay on the agent).
"""

from __future__ import annotations

REGISTER_PATH = "/register-agent"
HEARTBEAT_PATH = "/agent/heartbeat"
POLL_PATH = "/agent/poll"
JOB_START_PATH = "/agent/jobs/{job_id}/start"
JOB_OUTPUT_PATH = "/agent/jobs/{job_id}/output"
JOB_RESULT_PATH = "/agent/jobs/{job_id}/result"
JOB_EVENTS_PATH = "/agent/jobs/{job_id}/events"

#: The most flow events one ``/events`` upload carries (the hub refuses more).
MAX_EVENTS_PER_UPLOAD = 500

#: Terminal statuses an agent may report for a job.
RESULT_STATUSES = ("success", "failed", "timeout", "cancelled")
