"""Shared run state of the daemon: registered, draining, stopping, fatal error."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3


class Lifecycle:
    """Events the loops watch; every transition is one-way and thread-safe."""

    def __init__(self) -> None:
        self.registered = threading.Event()
        self.draining = threading.Event()
        self.stopping = threading.Event()
        self.forced = threading.Event()
        self.interrupt = threading.Event()  # wakes sleeping loops on drain or stop
        self.fatal: str | None = None
        self.exit_code = EXIT_OK

    @property
    def accepting_jobs(self) -> bool:
        """True while the agent should poll for new jobs."""
        return not (self.draining.is_set() or self.stopping.is_set())

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True if woken early by a drain or stop."""
        return self.interrupt.wait(seconds)

    def start_draining(self) -> None:
        """Take no new jobs; running ones continue."""
        self.draining.set()
        self.interrupt.set()

    def stop(self, exit_code: int = EXIT_OK) -> None:
        """End all loops; the first exit code that is not OK wins."""
        if exit_code != EXIT_OK and self.exit_code == EXIT_OK:
            self.exit_code = exit_code
        self.stopping.set()
        self.interrupt.set()

    def force(self) -> None:
        """Second signal: remember that this stop is forced (exit code 1)."""
        self.forced.set()
        if self.exit_code == EXIT_OK:
            self.exit_code = EXIT_FORCED
        self.start_draining()

    def fail(self, message: str, exit_code: int = EXIT_AUTH) -> None:
        """Stop because of an unrecoverable error (e.g. the API key was rejected)."""
        if self.fatal is None:
            self.fatal = message
            log.error("stopping: %s", message)
        self.start_draining()
        self.stop(exit_code)
