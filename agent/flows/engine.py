"""The flow engine: setup -> steps -> teardown, with retries, timeouts and streamed events.

See :mod:`agent.flows.events` for what ``emit`` receives. Teardown always runs once
setup has started; a teardown failure is reported without hiding the main failure.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from agent.flows.actions import ACTIONS, ActionSpec
from agent.flows.context import (
    ActionContext,
    CancelToken,
    FlowResolver,
    LogSink,
    RunContext,
    Scope,
    ScriptRunner,
    default_log_sink,
)
from agent.flows.errors import (
    AssertionsFailed,
    ExpressionError,
    FlowCancelled,
    FlowError,
    InterpolationError,
    StepFailed,
)
from agent.flows.events import Emit, Emitter, plain
from agent.flows.expressions import evaluate
from agent.flows.interpolate import MISSING, OS_ENV_KEY, interpolate
from agent.flows.outputs import extract_output
from agent.flows.schema import Flow, Step
from agent.flows.timeouts import call_with_deadline
from agent.runner import utc_now_iso

log = logging.getLogger(__name__)

DEFAULT_TEARDOWN_TIMEOUT = 60.0


@dataclass
class FlowResult:
    """How a run ended; ``outputs`` are the named outputs of the top-level steps."""

    status: str
    error: str | None
    duration_ms: int
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the flow passed."""
        return self.status == "passed"


class FlowEngine:
    """Runs flows; one engine may run several flows, one after another or concurrently.

    :param emit: receives every event (see :mod:`agent.flows.events`).
    :param resolver: ``name -> Flow`` for ``run_flow`` (the agent's whitelist); None = refused.
    :param script_runner: runs ``script`` steps; None = refused.
    :param report_values: include assertion ``actual`` values for every step (local runs).
    """

    def __init__(
        self,
        emit: Emit | None = None,
        *,
        resolver: FlowResolver | None = None,
        script_runner: ScriptRunner | None = None,
        log_sink: LogSink | None = None,
        os_env: Mapping[str, str] | None = None,
        report_values: bool = False,
        teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
    ) -> None:
        self.emit = emit
        self.resolver = resolver
        self.script_runner = script_runner
        self.log_sink = log_sink or default_log_sink
        self.os_env = os.environ if os_env is None else os_env
        self.report_values = report_values
        self.teardown_timeout = teardown_timeout

    def run(
        self,
        flow: Flow,
        variables: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> FlowResult:
        """Run ``flow`` to the end and emit ``flow_completed`` or ``flow_failed``."""
        started_at, t0 = utc_now_iso(), time.monotonic()
        limit = min((t for t in (timeout, flow.timeout) if t is not None), default=None)
        emitter = Emitter(self.emit)
        run = RunContext(
            emit=emitter, log_sink=self.log_sink, cancel=cancel or CancelToken(),
            deadline=None if limit is None else t0 + limit, flow_stack=(flow.name,),
            os_env=self.os_env, report_values=self.report_values,
            timeout_label=f"flow timeout ({limit:g}s)" if limit is not None else "flow timeout",
        )
        for warning in flow.warnings:
            emitter({"type": "flow_warning", "flow": flow.name, "message": warning})
            self.log_sink("warning", warning, flow.name)
        error, scope = self.run_subflow(flow, variables or {}, run, "", nested=False)
        outputs = plain(scope.outputs)
        duration_ms = int((time.monotonic() - t0) * 1000)
        status = "failed" if error else "passed"
        emitter({"type": f"flow_{'failed' if error else 'completed'}", "flow": flow.name,
                 "status": status, "started_at": started_at, "duration_ms": duration_ms,
                 "error": error, "outputs": outputs,
                 "steps": emitter.summary()})
        return FlowResult(status, error, duration_ms, outputs)

    def run_subflow(
        self, flow: Flow, variables: Mapping[str, Any], run: RunContext, prefix: str,
        nested: bool = True,
    ) -> tuple[str | None, Scope]:
        """Run setup, steps and teardown in a fresh scope; return (first error, scope)."""
        scope = Scope({})
        try:
            scope.variables.update(self.flow_variables(flow, variables, run.os_env))
        except FlowError as exc:
            return f"flow env: {exc}", scope
        if nested and flow.timeout is not None:
            end = time.monotonic() + flow.timeout
            run = run.derive(deadline=end if run.deadline is None else min(end, run.deadline),
                             timeout_label=f"flow {flow.name!r} timeout ({flow.timeout:g}s)")
        try:
            error = self.run_steps(flow.setup, scope, run, prefix)
            if error:
                error = f"setup failed: {error}"
                self.skip_steps(flow.steps, run, prefix, "not run: setup failed")
            else:
                error = self.run_steps(flow.steps, scope, run, prefix)
        except Exception as exc:  # never let a bug skip the teardown or kill the agent
            log.exception("flow %s: internal error", flow.name)
            error = f"internal error: {type(exc).__name__}: {exc}"
        if flow.teardown:
            teardown_run = run.derive(
                cancel=CancelToken(), deadline=time.monotonic() + self.teardown_timeout,
                timeout_label=f"teardown timeout ({self.teardown_timeout:g}s)")
            failure = self.run_steps(flow.teardown, scope, teardown_run, prefix, keep_going=True)
            if failure:
                error = f"{error}; teardown also failed: {failure}" if error else (
                    f"teardown failed: {failure}")
        return error, scope

    def flow_variables(
        self, flow: Flow, variables: Mapping[str, Any], os_env: Mapping[str, str]
    ) -> dict[str, Any]:
        """Flow ``env`` (interpolated, in order) overridden by the trigger's variables."""
        values: dict[str, Any] = {}

        def lookup(name: str) -> Any:
            return variables[name] if name in variables else values.get(name, MISSING)

        for name, value in flow.env.items():
            if name not in variables:
                values[name] = interpolate(value, lookup, os_env)
        return {**values, **variables}

    def run_steps(
        self, steps: Any, scope: Scope, run: RunContext, prefix: str, keep_going: bool = False
    ) -> str | None:
        """Run ``steps`` in order; return the first failure that counts, or None.

        A failed step stops the list unless it has ``on_error: continue`` (then it does
        not count) or ``keep_going`` is set (teardown: every step runs).
        """
        first = None
        steps = list(steps or ())
        for index, raw in enumerate(steps):
            step = raw if isinstance(raw, Step) else Step.from_dict(raw)
            if not keep_going:
                try:
                    run.check()
                except FlowError as exc:
                    self.skip_steps(steps[index:], run, prefix, f"not run: {exc}")
                    return first or str(exc)
            status, error = self.run_step(step, scope, run, prefix)
            if status == "failed" and step.on_error != "continue":
                first = first or f"step {prefix}{step.id}: {error}"
                if not keep_going:
                    self.skip_steps(steps[index + 1:], run, prefix,
                                    f"not run: step {prefix}{step.id} failed")
                    return first
        return first

    @staticmethod
    def skip_steps(steps: Any, run: RunContext, prefix: str, reason: str) -> None:
        """Report steps that will not run (after a failure) as skipped, so counts add up."""
        for raw in steps or ():
            step = raw if isinstance(raw, Step) else Step.from_dict(raw)
            run.emit({"type": "step_skipped", "id": prefix + step.id,
                      "name": step.name or step.id, "action": step.action,
                      "status": "skipped", "started_at": utc_now_iso(), "duration_ms": 0,
                      "reason": reason})

    def run_step(
        self, step: Step, scope: Scope, run: RunContext, prefix: str
    ) -> tuple[str, str | None]:
        """Run one step (``when``, retries, assertions, outputs) and emit its events."""
        base = {"id": prefix + step.id, "name": step.name or step.id, "action": step.action}
        started_at, t0 = utc_now_iso(), time.monotonic()
        try:
            skip = self._skip(step, scope, run)
        except ExpressionError as exc:
            run.emit({"type": "step_started", **base, "status": "running",
                      "started_at": started_at})
            return self._finish(run, base, started_at, t0, error=f"when {step.when!r}: {exc}")
        if skip:
            run.emit({"type": "step_skipped", **base, "status": "skipped", "started_at": started_at,
                      "duration_ms": 0, "reason": "when is false"})
            return "skipped", None
        run.emit({"type": "step_started", **base, "status": "running", "started_at": started_at})
        trace: dict[str, Any] = {"attempts": 0, "assertions": []}
        try:
            result = self._attempts(step, scope, run, base["id"], trace)
        except FlowError as exc:
            outputs = {}
            if isinstance(exc, StepFailed) and exc.result is not None:
                outputs = self._store(step, exc.result, scope, run, base["id"])
            return self._finish(run, base, started_at, t0, trace, str(exc), outputs)
        except Exception as exc:  # an action bug must fail the step, not the agent
            log.exception("step %s: internal error", base["id"])
            return self._finish(run, base, started_at, t0, trace,
                                error=f"internal error: {type(exc).__name__}: {exc}")
        outputs = self._store(step, result, scope, run, base["id"])
        return self._finish(run, base, started_at, t0, trace, outputs=outputs)

    def _finish(self, run: RunContext, base: dict[str, Any], started_at: str, t0: float,
                trace: dict[str, Any] | None = None, error: str | None = None,
                outputs: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
        status = "failed" if error else "passed"
        trace = trace or {"attempts": 0, "assertions": []}
        run.emit({"type": f"step_{'failed' if error else 'completed'}", **base, "status": status,
                  "started_at": started_at, "duration_ms": int((time.monotonic() - t0) * 1000),
                  "attempts": trace["attempts"], "assertions": plain(trace["assertions"]),
                  "error": error, "outputs": plain(dict(outputs or {}))})
        return status, error

    @staticmethod
    def _skip(step: Step, scope: Scope, run: RunContext) -> bool:
        if step.when is None:
            return False
        if isinstance(step.when, bool):
            return not step.when
        names = scope.names()
        names.maps.append({OS_ENV_KEY: run.os_env})  # ${env.X} inside the expression
        return not evaluate(step.when, names)

    def _attempts(self, step: Step, scope: Scope, run: RunContext, qid: str,
                  trace: dict[str, Any]) -> Any:
        """Try the step up to ``retry.max_attempts`` times, waiting per the backoff."""
        spec = ACTIONS[step.action]
        for attempt in range(1, step.retry.max_attempts + 1):
            if attempt > 1:
                left = run.remaining()
                delay = step.retry.delay_before(attempt)
                run.cancel.wait(delay if left is None else min(delay, max(left, 0)))
                run.check()
            trace["attempts"] = attempt
            ctx = self._context(step, scope, run, qid)
            try:
                return call_with_deadline(partial(self._attempt, step, spec, ctx), ctx, qid)
            except (InterpolationError, FlowCancelled):
                raise
            except FlowError:
                if attempt == step.retry.max_attempts:
                    raise
                run.check()
            finally:
                trace["assertions"] = ctx.assertions
        raise AssertionError("unreachable")  # pragma: no cover

    def _context(self, step: Step, scope: Scope, run: RunContext, qid: str) -> ActionContext:
        deadline, label = run.deadline, run.timeout_label
        if step.timeout is not None:
            end = time.monotonic() + step.timeout
            if deadline is None or end < deadline:
                deadline, label = end, f"step timeout ({step.timeout:g}s)"
        step_run = run.derive(cancel=CancelToken(run.cancel), deadline=deadline,
                              timeout_label=label)
        report = step.report_values or run.report_values
        return ActionContext(self, qid, scope, step_run, report, own_id=step.id)

    def _attempt(self, step: Step, spec: ActionSpec, ctx: ActionContext) -> Any:
        lookup = ctx.scope.lookup
        config = {key: value if key in spec.raw_keys else interpolate(value, lookup, ctx.run.os_env)
                  for key, value in step.config.items()}
        result = spec.run(config, ctx)
        try:
            ctx.check_assertions(list(step.assertions), result)
        except AssertionsFailed as exc:
            exc.result = result
            raise
        return result

    def _store(self, step: Step, result: Any, scope: Scope, run: RunContext,
               qid: str) -> dict[str, Any]:
        """Keep the result under the step's id (every key, plus the named outputs, as
        TestMesh stores them) and return the named outputs. An output never fails a step:
        one that matches nothing is nil, with a warning in the job's output."""
        names = scope.names().new_child({step.id: result})
        if isinstance(result, Mapping):
            names = names.new_child(dict(result))
        outputs = {}
        for name, path in step.output.items():
            outputs[name], note = extract_output(path, result, step.id, names)
            if note:
                run.log_sink("warning", f"output {name!r}: {note}", qid)
        stored = {**result, **outputs} if isinstance(result, Mapping) else result
        scope.results[step.id] = stored
        scope.outputs.update(outputs)
        return outputs
