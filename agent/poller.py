"""The long-poll loop: ask for as many jobs as there are free workers, hand them out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.backoff import Backoff
from agent.client import AuthRejected, HubClient, HubError, HubUnavailable
from agent.jobs import JobRegistry
from agent.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class Poller:
    """Poll only while a worker is free and the agent accepts jobs."""

    def __init__(
        self,
        client: HubClient,
        jobs: JobRegistry,
        lifecycle: Lifecycle,
        backoff: Backoff,
        dispatch: Callable[[dict[str, Any]], None],
        reregister: Callable[[], None],
        workers: int,
    ) -> None:
        self.client = client
        self.jobs = jobs
        self.lifecycle = lifecycle
        self.backoff = backoff
        self.dispatch = dispatch
        self.reregister = reregister
        self.workers = workers
        self.wait = 25.0

    def poll_once(self) -> None:
        """Wait for a free worker, long-poll once and dispatch what comes back."""
        if not self.jobs.wait_for_room(self.workers, timeout=0.5):
            return
        free = self.workers - len(self.jobs)
        assignments = self.client.poll(free, self.wait)
        if not self.lifecycle.accepting_jobs:
            if assignments:
                log.info(
                    "draining: leaving %d polled job(s) to expire back to the queue",
                    len(assignments),
                )
            return
        for job in assignments:
            self.dispatch(job)

    def run(self) -> None:
        """Loop until draining or stopping; never raises."""
        while self.lifecycle.accepting_jobs:
            try:
                self.poll_once()
                self.backoff.reset()
            except AuthRejected as exc:
                self.lifecycle.fail(f"API key rejected by the hub on poll ({exc})")
            except HubUnavailable as exc:
                delay = self.backoff.next_delay()
                log.warning("hub unreachable (poll): %s; next retry in %.1fs", exc, delay)
                self.lifecycle.sleep(delay)
            except HubError as exc:
                self._on_refused(exc)
            except Exception:
                log.exception("poll failed unexpectedly")
                self.lifecycle.sleep(self.backoff.next_delay())

    def _on_refused(self, exc: HubError) -> None:
        if exc.status == 404:
            log.warning("hub does not know this agent any more; registering again")
            try:
                self.reregister()
                return
            except AuthRejected as err:
                self.lifecycle.fail(f"API key rejected by the hub on registration ({err})")
                return
            except HubError as err:
                log.warning("re-registration failed: %s", err)
        else:
            log.error("poll refused: %s", exc)
        self.lifecycle.sleep(self.backoff.next_delay())
