"""The periodic tasks ``scriptmesh scheduler`` runs, as ``(interval_seconds, "module:function")``.

Add a task by appending to ``PERIODIC_TASKS``. Each function is called with
no arguments inside an app context, by the one scheduler process that holds
the leader lock, never twice at once. ``SCRIPTMESH_PERIODIC_TASKS`` replaces
the list (tests use it): ``"1:tests.e2e.proc_helpers:record_run,5:pkg.mod:fn"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PERIODIC_TASKS: list[tuple[float, str]] = [
    (2, "orchestrator.services.maintenance:run_maintenance"),
    (1, "orchestrator.services.scheduling:fire_due_schedules"),
    (1, "orchestrator.services.outbox:relay_due"),
    (3600, "orchestrator.services.audit:purge_expired"),
]

PERIODIC_TASKS_ENV = "SCRIPTMESH_PERIODIC_TASKS"


@dataclass(frozen=True)
class PeriodicTask:
    """One entry: call ``target`` every ``interval`` seconds."""

    interval: float
    target: str

    def resolve(self) -> Callable[[], Any]:
        """Import ``module:function`` and return the function."""
        module_name, _, attr = self.target.partition(":")
        function = getattr(importlib.import_module(module_name), attr, None)
        if not callable(function):
            raise ValueError(f"periodic task {self.target!r}: no callable {attr!r}")
        return function


def parse_task(entry: str) -> PeriodicTask:
    """``"interval:module:function"`` -> ``PeriodicTask``; ``ValueError`` when malformed."""
    interval, _, target = entry.strip().partition(":")
    module_name, _, attr = target.partition(":")
    try:
        seconds = float(interval)
    except ValueError:
        seconds = 0.0
    if seconds <= 0 or not module_name or not attr:
        raise ValueError(
            f"bad periodic task {entry!r}: expected 'seconds:module:function', "
            "e.g. '2:orchestrator.services.maintenance:run_maintenance'"
        )
    return PeriodicTask(seconds, target)


def configured_tasks(environ: Mapping[str, str]) -> list[PeriodicTask]:
    """``PERIODIC_TASKS``, or the list in ``SCRIPTMESH_PERIODIC_TASKS`` when that is set."""
    override = environ.get(PERIODIC_TASKS_ENV, "").strip()
    if override:
        return [parse_task(part) for part in override.split(",") if part.strip()]
    return [PeriodicTask(float(seconds), target) for seconds, target in PERIODIC_TASKS]
