"""The heartbeat loop: reload the manifest, report running jobs, obey ``cancel`` commands."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.backoff import Backoff
from agent.client import AuthRejected, HubClient, HubError, HubUnavailable
from agent.jobs import JobRegistry
from agent.lifecycle import Lifecycle
from agent.manifest import ManifestStore

log = logging.getLogger(__name__)


class Heartbeat:
    """Send a heartbeat every ``interval`` seconds (sooner when woken) until the agent stops."""

    def __init__(
        self,
        client: HubClient,
        manifest: ManifestStore,
        jobs: JobRegistry,
        lifecycle: Lifecycle,
        backoff: Backoff,
        reregister: Callable[[], None],
    ) -> None:
        self.client = client
        self.manifest = manifest
        self.jobs = jobs
        self.lifecycle = lifecycle
        self.backoff = backoff
        self.reregister = reregister
        self.interval = 60.0
        self.wake = threading.Event()
        #: The jobs reported as running (the daemon adds those with a spooled result).
        self.owned_jobs: Callable[[], list[str]] = jobs.ids
        self._last_manifest_error: str | None = None

    def beat(self) -> None:
        """Send one heartbeat and apply the commands in the answer."""
        self.manifest.reload()
        error = self.manifest.error
        if error != self._last_manifest_error:
            if error:
                log.warning("manifest problem (last good manifest kept): %s", error)
            else:
                log.info("manifest reloaded: %d scripts", len(self.manifest.current.scripts))
            self._last_manifest_error = error
        commands = self.client.heartbeat(
            self.manifest.current.to_wire(),
            error,
            self.owned_jobs(),
            self.lifecycle.draining.is_set(),
            self.interval,
        )
        for command in commands:
            if command.get("type") == "cancel":
                job_id = str(command.get("job_id"))
                if self.jobs.cancel(job_id, "cancelled by the hub"):
                    log.info("job %s: cancel requested by the hub", job_id)
            else:
                log.warning("ignoring unknown hub command %r", command.get("type"))

    def run(self) -> None:
        """Loop until the agent stops; never raises."""
        while not self.lifecycle.stopping.is_set():
            delay = self.interval
            try:
                self.beat()
                self.backoff.reset()
            except AuthRejected as exc:
                self.lifecycle.fail(f"API key rejected by the hub on heartbeat ({exc})")
                return
            except HubUnavailable as exc:
                delay = min(self.backoff.next_delay(), self.interval)
                log.warning("hub unreachable (heartbeat): %s; next retry in %.1fs", exc, delay)
            except HubError as exc:
                if exc.status == 404:
                    log.warning("hub does not know this agent any more; registering again")
                    self._safe_reregister()
                else:
                    log.error("heartbeat refused: %s", exc)
            except Exception:
                log.exception("heartbeat failed unexpectedly")
            self.wake.wait(delay)
            self.wake.clear()

    def _safe_reregister(self) -> None:
        try:
            self.reregister()
        except AuthRejected as exc:
            self.lifecycle.fail(f"API key rejected by the hub on registration ({exc})")
        except HubError as exc:
            log.warning("re-registration failed: %s", exc)
