"""Run state shared by the engine and the actions: scopes, cancellation, deadlines, callbacks."""

from __future__ import annotations

import logging
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agent.flows.assertions import check_assertions
from agent.flows.errors import FlowCancelled, StepTimeout
from agent.flows.interpolate import MISSING, OS_ENV_KEY

if TYPE_CHECKING:
    from agent.flows.engine import FlowEngine

log = logging.getLogger("agent.flows")

#: ``log_sink(level, message, step_id)``: where ``log`` steps write (the job's output).
LogSink = Callable[[str, str, str], None]
#: ``resolver(name)``: the definition (a ``Flow``) of another whitelisted flow.
FlowResolver = Callable[[str], Any]
#: ``runner(name, params, timeout, should_stop)`` -> ``{"exit_code", "stdout", "stderr"}``.
ScriptRunner = Callable[[str, dict[str, str], float | None, Callable[[], bool]], Mapping]

SLEEP_SLICE = 0.05
RESPONSE_KEYS = ("status", "body", "headers", "duration_ms")


def default_log_sink(level: str, message: str, step_id: str) -> None:
    """Log through the ``agent.flows`` logger."""
    log.log(logging.getLevelName(level.upper()), "[%s] %s", step_id, message)


class CancelToken:
    """A cancel flag that is also set when any parent token is; waits wake up early."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self.parent = parent
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str) -> None:
        """Set the flag (first reason wins)."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def reason(self) -> str | None:
        """Why this token (or the nearest cancelled parent) was cancelled, else None."""
        token: CancelToken | None = self
        while token is not None:
            if token._event.is_set():
                return token._reason
            token = token.parent
        return None

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True as soon as the token is cancelled."""
        end = time.monotonic() + max(seconds, 0.0)
        while self.reason is None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._event.wait(min(left, SLEEP_SLICE))
        return True


class Scope:
    """Names visible to a step: step results by id, named outputs and variables.

    Child scopes (one per ``for_each`` item, one per sub-flow) see their parent's
    names but write their own; the first match wins: results, outputs, variables.
    """

    def __init__(self, variables: Mapping[str, Any], parent: Scope | None = None) -> None:
        self.parent = parent
        self.variables = dict(variables)
        self.outputs: dict[str, Any] = {}
        self.results: dict[str, Any] = {}

    def child(self, variables: Mapping[str, Any] | None = None) -> Scope:
        """A new layer on top of this scope."""
        return Scope(variables or {}, parent=self)

    def lookup(self, name: str) -> Any:
        """The value called ``name``, or :data:`MISSING`."""
        for layer in (self.results, self.outputs, self.variables):
            if name in layer:
                return layer[name]
        return self.parent.lookup(name) if self.parent else MISSING

    def names(self) -> ChainMap:
        """A read-only view of every visible name, for expressions."""
        inherited = self.parent.names().maps if self.parent else []
        return ChainMap(self.results, self.outputs, self.variables, *inherited)


@dataclass
class RunContext:
    """What every step of one run shares; nested steps get a copy with their own cancel/deadline."""

    emit: Callable[[dict[str, Any]], None]
    log_sink: LogSink
    cancel: CancelToken
    deadline: float | None = None
    flow_stack: tuple[str, ...] = ()
    os_env: Mapping[str, str] = field(default_factory=dict)
    report_values: bool = False
    timeout_label: str = "flow"

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def derive(self, **changes: Any) -> RunContext:
        """A copy with some fields changed (sharing emit, callbacks and environment)."""
        return replace(self, **changes)

    def check(self) -> None:
        """Raise when the run was cancelled or is past its deadline."""
        reason = self.cancel.reason
        if reason is not None:
            raise FlowCancelled(f"cancelled: {reason}")
        left = self.remaining()
        if left is not None and left <= 0:
            raise StepTimeout(f"{self.timeout_label} exceeded")


@dataclass
class ActionContext:
    """What an action sees while it runs: its step, the scope, and cancellable waiting."""

    engine: FlowEngine
    step_id: str
    scope: Scope
    run: RunContext
    report_values: bool = False
    assertions: list[dict[str, Any]] = field(default_factory=list)
    #: The step's own id (unqualified): assertions may say ``register.status``.
    own_id: str = ""

    def remaining(self) -> float | None:
        """Seconds left for this step (None: unbounded)."""
        return self.run.remaining()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, cut short by cancellation or the deadline (which then raise)."""
        left = self.remaining()
        self.run.cancel.wait(seconds if left is None else min(seconds, max(left, 0)))
        self.run.check()

    def cancelled(self) -> bool:
        """True once the step must stop (cancel or deadline)."""
        left = self.remaining()
        return self.run.cancel.reason is not None or (left is not None and left <= 0)

    def names(self, result: Any = None) -> ChainMap:
        """Names for expressions: ``result``'s fields first (and the result under the
        step's own id), then the scope's, then the agent environment for ``${env.X}``."""
        names = self.scope.names()
        names.maps.append({OS_ENV_KEY: self.run.os_env})
        if result is None:
            return names
        if self.own_id:
            names = names.new_child({self.own_id: result})
        if not isinstance(result, Mapping):
            return names
        fields = dict(result)
        if "status" in fields and "body" in fields:  # TestMesh's ``response.status`` alias
            fields.setdefault("response", {key: fields.get(key) for key in RESPONSE_KEYS})
        return names.new_child(fields)

    def log(self, message: str, level: str = "info") -> None:
        """Write one line to the job's output."""
        self.run.log_sink(level, message, self.step_id)

    def run_steps(self, steps: list[Any], prefix: str, scope: Scope | None = None) -> str | None:
        """Run nested steps (ids shown as ``prefix + id``); return the first failure or None."""
        return self.engine.run_steps(steps, scope or self.scope, self.run, prefix)

    def check_assertions(self, expressions: list[str], result: Any = None) -> None:
        """Evaluate assertions against ``result`` + scope; record outcomes, raise on failure."""
        check_assertions(expressions, self.names(result), self.assertions, self.report_values)


@dataclass(frozen=True)
class ActionSpec:
    """One action: its function and which config keys the engine must not interpolate.

    ``raw_keys`` hold nested steps or expressions, which are resolved later, when
    (and as often as) they run. ``config_schema`` is merged into the flow JSON Schema
    (every key it lists under ``properties`` is allowed, no other). ``result_keys`` and
    ``example`` feed the generated action reference (``docs/flow-actions.md``).
    """

    run: Callable[[dict[str, Any], ActionContext], Any]
    raw_keys: frozenset[str] = frozenset()
    config_schema: Mapping[str, Any] = field(default_factory=dict)
    expression_keys: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)
