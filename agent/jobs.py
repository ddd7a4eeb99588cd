"""Bookkeeping of the jobs this agent is running, so loops can list and cancel them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class JobHandle:
    """One running job as the other loops see it: an id and a way to cancel it."""

    job_id: str
    script: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None

    def cancel(self, reason: str) -> None:
        """Ask the runner to kill this job's process group (first reason wins)."""
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()


class JobRegistry:
    """Thread-safe map of job id to :class:`JobHandle` for jobs between receipt and report."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobHandle] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def add(self, job_id: str, script: str = "") -> JobHandle | None:
        """Track a new job; return None if it is already tracked (a duplicate assignment)."""
        with self._lock:
            if job_id in self._jobs:
                return None
            handle = self._jobs[job_id] = JobHandle(job_id, script)
            return handle

    def remove(self, job_id: str) -> None:
        """Stop tracking a job once its result is reported."""
        with self._changed:
            self._jobs.pop(job_id, None)
            self._changed.notify_all()

    def ids(self) -> list[str]:
        """Return the ids of all tracked jobs."""
        with self._lock:
            return list(self._jobs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def cancel(self, job_id: str, reason: str) -> bool:
        """Cancel one job; return False when it is not running here."""
        with self._lock:
            handle = self._jobs.get(job_id)
        if handle is None:
            return False
        handle.cancel(reason)
        return True

    def cancel_all(self, reason: str) -> None:
        """Cancel every tracked job."""
        with self._lock:
            handles = list(self._jobs.values())
        for handle in handles:
            handle.cancel(reason)

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Block until fewer than ``limit`` jobs are tracked or ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._jobs) < limit, timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Block until no job is tracked or ``timeout`` passes; return True when empty."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._jobs, timeout)
