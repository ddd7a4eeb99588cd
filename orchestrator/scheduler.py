"""``scriptmesh scheduler``: runs the periodic tasks while this process is the leader.

Run as many scheduler processes as you like (for availability); they elect a
leader through ``orchestrator.leader.LeaderLock`` and only the leader runs
tasks. The others keep trying to take the lock and one takes over within a
lock TTL when the leader dies, or at once when it stops cleanly (SIGTERM
releases the lock). APScheduler fires each task on an interval trigger with
``max_instances=1`` and ``coalesce``, so a slow run is never doubled up.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from orchestrator.leader import DEFAULT_LEADER_TTL, LeaderLock
from orchestrator.periodic import PeriodicTask, configured_tasks

log = logging.getLogger(__name__)

LEADER_KEY = "scriptmesh:scheduler:leader"
LEADER_TTL_ENV = "SCRIPTMESH_LEADER_TTL"
#: A run that could not start on time is skipped after this many seconds.
MISFIRE_GRACE_SECONDS = 30


class SchedulerProcess:
    """The scheduler loop: keep the election going, fire tasks while leading.

    :param app: the app whose context every task runs in.
    :param tasks: what to run and how often.
    :param lock: this process's handle on the scheduler leader lock.
    """

    def __init__(self, app: Flask, tasks: list[PeriodicTask], lock: LeaderLock) -> None:
        self.app = app
        self.tasks = tasks
        self.lock = lock
        self._stop = threading.Event()
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"max_instances": 1, "coalesce": True,
                          "misfire_grace_time": MISFIRE_GRACE_SECONDS},
        )

    def run(self) -> None:
        """Run until ``request_stop``; then wait for running tasks and release the lock."""
        functions = [(task, task.resolve()) for task in self.tasks]  # fail fast on typos
        for task, function in functions:
            self._scheduler.add_job(self._run_task, "interval", seconds=task.interval,
                                    args=(task, function), id=task.target, name=task.target)
        log.info("scheduler %s: %d periodic task(s): %s", self.lock.identity, len(functions),
                 ", ".join(f"{t.target} every {t.interval:g}s" for t in self.tasks))
        self.lock.maintain()
        self._scheduler.start()
        try:
            while not self._stop.wait(self.lock.renew_interval):
                self.lock.maintain()
        finally:
            self._scheduler.shutdown(wait=True)
            self._release_lock()
            log.info("scheduler %s: stopped", self.lock.identity)

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: first signal stops gracefully, a second one exits at once."""
        if self._stop.is_set():
            log.warning("scheduler: second %s, exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        self._stop.set()

    def _run_task(self, task: PeriodicTask, function: Callable[[], Any]) -> None:
        """One firing: run ``function`` in an app context if we lead, log its failures."""
        if not self.lock.held:
            return
        from orchestrator.extensions import db

        with self.app.app_context():
            try:
                result = function()
                if did_something(result):
                    log.info("periodic %s: %s", task.target, result)
            except Exception:  # one failed run must not stop the schedule
                log.exception("periodic %s failed", task.target)
            finally:
                db.session.remove()

    def _release_lock(self) -> None:
        try:
            if self.lock.release():
                log.info("scheduler %s: leader lock released", self.lock.identity)
        except redis.RedisError as exc:
            log.warning("scheduler: could not release the leader lock (%s); it expires "
                        "in %gs", exc, self.lock.ttl)


def did_something(result: Any) -> bool:
    """Worth a log line: a truthy result, and for a dict of counts, a non-zero count."""
    if isinstance(result, dict):
        return any(result.values())
    return bool(result)


def leader_ttl(environ: Mapping[str, str]) -> float:
    """The lock TTL in seconds: ``SCRIPTMESH_LEADER_TTL`` or ``DEFAULT_LEADER_TTL``."""
    raw = environ.get(LEADER_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_LEADER_TTL
    value = float(raw)
    if value <= 0:
        raise ValueError(f"{LEADER_TTL_ENV} must be positive, got {raw!r}")
    return value


def run_scheduler(environ: Mapping[str, str] | None = None) -> None:
    """Entry point of ``scriptmesh scheduler``: build the app, handle signals, run."""
    from orchestrator import create_app
    from orchestrator.extensions import redis_store

    environ = os.environ if environ is None else environ
    app = create_app()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # no line per firing
    with app.app_context():
        connection = redis_store.connection
    lock = LeaderLock(connection, LEADER_KEY, ttl=leader_ttl(environ))
    process = SchedulerProcess(app, configured_tasks(environ), lock)
    signal.signal(signal.SIGTERM, process.request_stop)
    signal.signal(signal.SIGINT, process.request_stop)
    process.run()
    gc.freeze()  # exiting next: skip the final full collection (a second on a busy host)
