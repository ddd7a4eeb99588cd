"""Run one ``kind: "flow"`` assignment with the flow engine, streaming its events to the hub.

The same path as a script job (check the manifest, acknowledge, run, spool and
report; see :class:`agent.runner.JobRunner`), with the engine in place of a
process: events go to ``/events`` and the ``log`` lines plus a step summary to
``/output`` while the flow runs; the result carries the events not yet
acknowledged, so a hub outage at the end loses no step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.config import InlinePolicy, inline_policy
from agent.event_streamer import EventStreamer
from agent.flows.actions.script import ManifestScriptRunner
from agent.flows.context import CancelToken
from agent.flows.engine import FlowEngine, FlowResult
from agent.flows.errors import FlowError
from agent.flows.local import StepPrinter
from agent.flows.resolvers import ManifestFlowResolver
from agent.flows.schema import Flow, load_flow, load_flow_file
from agent.jobs import JobHandle
from agent.log_streamer import LogStreamer
from agent.runner import (
    SECRET_ENV_VARS,
    JobRefused,
    JobRunner,
    _as_timeout,
    utc_now_iso,
)

log = logging.getLogger(__name__)

CANCEL_CHECK = 0.1
#: The engine's error text when the flow (not one step) ran out of time.
FLOW_TIMEOUT_MARK = "flow timeout ("


class TextBuffer:
    """A thread-safe, capped text stream: the printer writes, the log streamer reads."""

    def __init__(self, cap_chars: int) -> None:
        self.cap = cap_chars
        self.truncated = False
        self._parts: list[str] = []
        self._size = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Append ``text`` (cut at the cap, which is then remembered as ``truncated``)."""
        with self._lock:
            room = self.cap - self._size
            if len(text) > room:
                text, self.truncated = text[: max(room, 0)], True
            self._parts.append(text)
            self._size += len(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush: written text is readable at once."""

    def text(self) -> str:
        """Everything written so far."""
        with self._lock:
            return "".join(self._parts)

    def read_live(self, offset: int) -> str:
        """The text after character ``offset``."""
        return self.text()[offset:]


def agent_environment(api_key: str) -> dict[str, str]:
    """The environment ``${env.NAME}`` may read: the agent's own, minus its API key."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in SECRET_ENV_VARS and not (api_key and value == api_key)
    }


def flow_status(result: FlowResult, token: CancelToken) -> str:
    """The job status a finished run maps to."""
    if result.ok:
        return "success"
    if token.reason is not None:
        return "cancelled"
    if FLOW_TIMEOUT_MARK in (result.error or ""):
        return "timeout"
    return "failed"


@dataclass(frozen=True)
class FlowGrant:
    """What a flow job may use besides HTTP, databases and Redis: ``script`` steps and the
    agent's environment (``${env.NAME}``). Manifest flows get both; inline flows (sent by
    the hub, not written by the agent's owner) get scripts only when allowed, never the
    environment, so a dispatched definition cannot read the agent's secrets."""

    scripts: bool = True
    environment: bool = True


class FlowJobRunner(JobRunner):
    """Turns a flow ASSIGNMENT into a reported result; one call per job.

    An assignment with a ``definition`` is an inline flow: run only when the agent
    opted in (``ALLOW_INLINE_FLOWS=true``), and without ``script`` steps unless
    ``ALLOW_INLINE_FLOW_SCRIPTS=true`` too.
    """

    inline: InlinePolicy | None = None

    def _run_prepared(self, prepared: Any, timeout: Any, handle: JobHandle) -> dict[str, Any]:
        flow, variables, grant = prepared
        return self._execute_flow(flow, variables, timeout, handle, grant)

    def _policy(self) -> InlinePolicy:
        return self.inline if self.inline is not None else inline_policy()

    def _prepare(self, job: Mapping[str, Any],
                 job_id: str) -> tuple[Flow, dict[str, Any], FlowGrant]:
        if job.get("kind") != "flow":
            raise JobRefused(f"unsupported_kind: {job.get('kind')}")
        name = str(job.get("flow") or "")
        variables = job.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise JobRefused("invalid_variables: variables must be an object")
        if job.get("definition") is not None:
            return self._prepare_inline(name, job["definition"], dict(variables))
        entry = self.manifest.lookup_flow(name)
        if entry is None:  # the agent is the final authority on what may run here
            raise JobRefused(f"flow_not_in_manifest: {name}")
        try:
            return load_flow_file(entry.path), dict(variables), FlowGrant()
        except FlowError as exc:
            raise JobRefused(f"invalid_flow: {name}: {exc}") from None

    def _prepare_inline(self, name: str, definition: Any,
                        variables: dict[str, Any]) -> tuple[Flow, dict[str, Any], FlowGrant]:
        policy = self._policy()
        if not policy.flows:
            raise JobRefused("inline_flows_not_allowed: start the agent with "
                             "ALLOW_INLINE_FLOWS=true to run flows sent by the hub")
        try:
            flow = load_flow(definition)
        except FlowError as exc:
            raise JobRefused(f"invalid_flow: {name}: {exc}") from None
        return flow, variables, FlowGrant(scripts=policy.scripts, environment=False)

    def _engine(self, handle: JobHandle, printer: StepPrinter, events: EventStreamer,
                grant: FlowGrant) -> FlowEngine:
        def emit(event: dict[str, Any]) -> None:
            printer(event)
            events.add(event)

        settings = self.settings
        scripts = ManifestScriptRunner(
            self.manifest.lookup, settings.scripts_dir, job_id=handle.job_id,
            output_cap=settings.output_cap_bytes, kill_grace=settings.kill_grace,
            secret=settings.api_key, allow_undeclared=self.manifest.allow_undeclared_params,
        )
        return FlowEngine(
            emit, resolver=ManifestFlowResolver(self.manifest.lookup_flow),
            script_runner=scripts if grant.scripts else None, log_sink=printer.log,
            os_env=agent_environment(settings.api_key) if grant.environment else {},
        )

    def _execute_flow(
        self, flow: Flow, variables: dict[str, Any], timeout: Any, handle: JobHandle,
        grant: FlowGrant,
    ) -> dict[str, Any]:
        started_at, t0 = utc_now_iso(), time.monotonic()
        output = TextBuffer(self.settings.output_cap_bytes)
        interval = self.settings.stream_interval
        events = EventStreamer(lambda batch: self._upload_events(handle, batch), interval)
        printer = StepPrinter(output)  # type: ignore[arg-type]
        engine = self._engine(handle, printer, events, grant)
        log.info("job %s started: flow %s", handle.job_id, flow.name)
        streamer = LogStreamer(
            {"stdout": output.read_live},
            lambda chunk: self._upload_output(handle, chunk),
            interval,
        ).start()
        events.start()
        token = CancelToken()
        done = threading.Event()
        threading.Thread(target=_forward_cancel, args=(handle, token, done),
                         name=f"cancel-{handle.job_id}", daemon=True).start()
        try:
            result = engine.run(flow, variables, timeout=_as_timeout(timeout), cancel=token)
        finally:
            done.set()
            streamer.stop()
            events.stop(flush=True)
        return {
            "status": flow_status(result, token),
            "exit_code": None,
            "stdout": output.text(),
            "stderr": "",
            "truncated": {"stdout": output.truncated, "stderr": False},
            "duration_ms": int((time.monotonic() - t0) * 1000),
            "started_at": started_at,
            "error": result.error,
            "events": events.pending(),
        }

    def _upload_events(self, handle: JobHandle, batch: list[dict[str, Any]]) -> bool:
        return self._upload_live(
            handle, "flow events", lambda: self.client.upload_events(handle.job_id, batch))


def _forward_cancel(handle: JobHandle, token: CancelToken, done: threading.Event) -> None:
    """Cancel the engine's token once the job's handle is cancelled (hub or agent stop)."""
    while not done.wait(CANCEL_CHECK):
        if handle.cancel_event.is_set():
            token.cancel(handle.cancel_reason or "cancelled")
            return
