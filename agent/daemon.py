"""The agent daemon: register, run heartbeat/poll/resend loops and workers, handle signals."""

from __future__ import annotations

import gc
import logging
import re
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent import __version__, process_groups
from agent.backoff import Backoff
from agent.client import AuthRejected, HubClient, HubError, HubUnavailable
from agent.config import AgentConfig
from agent.flow_runner import FlowJobRunner
from agent.health import HealthServer
from agent.heartbeat import Heartbeat
from agent.jobs import JobHandle, JobRegistry
from agent.lifecycle import EXIT_AUTH, EXIT_CONFIG, EXIT_FORCED, Lifecycle
from agent.manifest import ManifestError, ManifestStore, load_manifest
from agent.poller import Poller
from agent.process_groups import GroupRecord
from agent.reaper import start_reaper
from agent.reporter import ResultReporter
from agent.runner import JobRunner, RunnerSettings, refused_result
from agent.spool import Spool

log = logging.getLogger(__name__)

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
RESEND_IDLE_CHECK = 1.0
FORCE_REPORT_MARGIN = 10.0


class StartupError(Exception):
    """The agent cannot start; the message is one line for stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Agent:
    """One agent process: wires the pieces together and owns their threads."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.lifecycle = Lifecycle()
        self.client = HubClient(
            config.orchestrator_url, config.api_key, config.agent_name, config.ca_bundle
        )
        self.manifest = ManifestStore(config.manifest_path, config.scripts_dir,
                                      config.allow_undeclared_params)
        self.spool = Spool(config.spool_dir)
        self.reporter = ResultReporter(self.client, self.spool)
        self.jobs = JobRegistry()
        settings = RunnerSettings(
            config.scripts_dir,
            config.output_cap_bytes,
            config.kill_grace,
            config.api_key,
            backoff_base=config.backoff_base,
            backoff_cap=config.backoff_cap,
        )
        self.runner = JobRunner(settings, self.manifest, self.client, self.reporter)
        self.flow_runner = FlowJobRunner(settings, self.manifest, self.client, self.reporter)
        self.heartbeat = Heartbeat(
            self.client, self.manifest, self.jobs, self.lifecycle, self._backoff(), self.register
        )
        self.heartbeat.interval = config.heartbeat_interval
        self.heartbeat.owned_jobs = self.owned_job_ids
        self.poller = Poller(
            self.client,
            self.jobs,
            self.lifecycle,
            self._backoff(),
            self.dispatch,
            self.register,
            config.workers,
        )
        self.poller.wait = config.poll_wait
        self.pool = ThreadPoolExecutor(config.workers, thread_name_prefix="worker")
        self.health: HealthServer | None = None
        self.groups = GroupRecord(config.spool_dir)
        self._reaper: Any = None
        self._signals = 0

    def _backoff(self) -> Backoff:
        return Backoff(self.config.backoff_base, self.config.backoff_cap)

    def register(self) -> dict[str, Any]:
        """POST /register-agent once and adopt the hub's suggested intervals (if shorter)."""
        self.manifest.reload()
        answer = self.client.register(
            {
                "tags": list(self.config.tags),
                "version": __version__,
                "workers": self.config.workers,
                "hostname": socket.gethostname(),
                "manifest": self.manifest.current.to_wire(),
                "manifest_error": self.manifest.error,
                "heartbeat_interval": self.heartbeat.interval,
                # The hub ends at once the jobs it thinks we run that we do not.
                "running_jobs": self.owned_job_ids(),
            }
        )
        for attr, owner, key in (
            ("interval", self.heartbeat, "heartbeat_interval"),
            ("wait", self.poller, "poll_wait"),
        ):
            hub_value = answer.get(key)
            if isinstance(hub_value, int | float) and hub_value > 0:
                setattr(owner, attr, min(getattr(owner, attr), float(hub_value)))
        self.lifecycle.registered.set()
        log.info(
            "agent %s registered (agent_id=%s, workers=%d, scripts=%d)",
            self.config.agent_name,
            answer.get("agent_id"),
            self.config.workers,
            len(self.manifest.current.scripts),
        )
        return answer

    def owned_job_ids(self) -> list[str]:
        """Jobs this agent still owns: running ones, and those whose result is spooled."""
        return sorted(set(self.jobs.ids()) | set(self.spool.job_ids()))

    def register_until_done(self) -> None:
        """Register, retrying with backoff while the hub is unreachable.

        :raises AuthRejected: the key was refused; :raises HubError: registration refused.
        """
        backoff = self._backoff()
        while not self.lifecycle.stopping.is_set():
            try:
                self.register()
                return
            except HubUnavailable as exc:
                delay = backoff.next_delay()
                log.warning("hub unreachable (register): %s; next retry in %.1fs", exc, delay)
                self.lifecycle.stopping.wait(delay)

    def dispatch(self, job: dict[str, Any]) -> None:
        """Hand one assignment to the worker pool (duplicates and bad ids are skipped)."""
        job_id = job.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID_RE.match(job_id):
            log.error("ignoring assignment with invalid job_id %r", job_id)
            return
        handle = self.jobs.add(job_id, str(job.get("script") or job.get("flow") or ""))
        if handle is None:
            log.warning("job %s is already running here; ignoring duplicate", job_id)
            return
        self.pool.submit(self._run_job, job, handle)

    def _run_job(self, job: dict[str, Any], handle: JobHandle) -> None:
        runner = self.flow_runner if job.get("kind") == "flow" else self.runner
        try:
            runner.run(job, handle)
        except Exception as exc:
            log.exception("job %s crashed in the agent", handle.job_id)
            try:
                self.reporter.report(handle.job_id, refused_result(f"agent_error: {exc}"))
            except Exception:
                log.exception("job %s: could not report the agent error", handle.job_id)
        finally:
            self.jobs.remove(handle.job_id)

    def resend_loop(self) -> None:
        """Retry spooled results (including ones left by a previous run) until stopped."""
        backoff = self._backoff()
        while not self.lifecycle.stopping.is_set():
            try:
                done = self.reporter.resend_all()
            except AuthRejected as exc:
                self.lifecycle.fail(f"API key rejected by the hub on result upload ({exc})")
                return
            except Exception:
                log.exception("resending spooled results failed")
                done = False
            if done:
                backoff.reset()
                while not (
                    self.reporter.pending.wait(RESEND_IDLE_CHECK)
                    or self.lifecycle.stopping.is_set()
                ):
                    pass
                continue
            delay = backoff.next_delay()
            log.warning("spooled results waiting for the hub; next retry in %.1fs", delay)
            self.lifecycle.stopping.wait(delay)

    def stop_gracefully(self) -> None:
        """First signal: stop polling, let running jobs finish up to DRAIN_TIMEOUT, then exit 0."""
        log.info(
            "draining: no new jobs; waiting up to %gs for %d running job(s)",
            self.config.drain_timeout,
            len(self.jobs),
        )
        self.lifecycle.start_draining()
        self.heartbeat.wake.set()
        threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        if not self.jobs.wait_empty(self.config.drain_timeout):
            log.warning("drain timeout: cancelling %d running job(s)", len(self.jobs))
            self.jobs.cancel_all("agent shutting down (drain timeout)")
            self.jobs.wait_empty(self.config.kill_grace + FORCE_REPORT_MARGIN)
        self.lifecycle.stop()

    def stop_ungracefully(self) -> None:
        """Second signal: kill every running job's process group, report them cancelled, exit."""
        log.warning("forced stop: killing %d running job(s)", len(self.jobs))
        self.lifecycle.force()
        self.jobs.cancel_all("agent force-stopped")

        def finish() -> None:
            self.jobs.wait_empty(self.config.kill_grace + FORCE_REPORT_MARGIN)
            self.lifecycle.stop(EXIT_FORCED)

        threading.Thread(target=finish, name="force-stop", daemon=True).start()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        log.info("received %s", signal.Signals(signum).name)
        if self._signals == 1:
            self.stop_gracefully()
        elif self._signals == 2:
            self.stop_ungracefully()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: first = drain, second = force (must run in the main thread)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _start_health(self) -> None:
        if not self.config.agent_port:
            return
        try:
            self.health = HealthServer(self.config.agent_port, self._is_ready).start()
            log.info("health endpoint on port %d (/healthz, /readyz)", self.health.port)
        except OSError as exc:
            log.error(
                "health endpoint disabled: cannot bind port %d: %s", self.config.agent_port, exc
            )

    def _is_ready(self) -> bool:
        return self.lifecycle.registered.is_set() and self.lifecycle.accepting_jobs

    def _start_loops(self) -> None:
        for name, target in (
            ("heartbeat", self.heartbeat.run),
            ("poller", self.poller.run),
            ("resend", self.resend_loop),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def run(self) -> int:
        """Run until stopped; return the process exit code.

        :raises StartupError: broken manifest, key rejected or registration refused.
        """
        try:
            load_manifest(self.config.manifest_path, self.config.scripts_dir)
        except ManifestError as exc:
            raise StartupError(str(exc), EXIT_CONFIG) from None
        self.install_signal_handlers()
        self._guard_process_groups()
        self._start_health()
        try:
            self.register_until_done()
        except AuthRejected as exc:
            self._shutdown()
            raise StartupError(f"API key rejected at registration: {exc}", EXIT_AUTH) from None
        except HubError as exc:
            self._shutdown()
            raise StartupError(f"registration refused by the hub: {exc}", EXIT_CONFIG) from None
        if not self.lifecycle.stopping.is_set():
            self._start_loops()
        while not self.lifecycle.stopping.wait(0.5):
            pass
        return self._shutdown()

    def _guard_process_groups(self) -> None:
        """Kill the groups a previous run left, then record ours and start the reaper."""
        for leftover in self.groups.kill_leftovers():
            log.warning(
                "killed process group %d (%d process(es)) of job %s, left running by a "
                "previous agent run; the hub ends that job as agent_restarted",
                leftover.pgid, leftover.processes, leftover.job_id,
            )
        process_groups.use_record(self.groups)
        try:
            self._reaper = start_reaper(str(self.config.spool_dir))
        except OSError as exc:
            log.warning("no reaper process (%s): scripts are killed on next start only", exc)

    def _stop_reaper(self) -> None:
        if self._reaper is None:
            return
        self._reaper.stdin.close()  # end-of-file: the reaper kills what is left, then exits
        try:
            self._reaper.wait(5)
        except Exception:  # noqa: BLE001 - never block the exit on it
            log.warning("reaper did not exit")
        self._reaper = None

    def _shutdown(self) -> int:
        if self.lifecycle.fatal and len(self.jobs):
            self.jobs.cancel_all("agent stopping: " + self.lifecycle.fatal)
            self.jobs.wait_empty(self.config.kill_grace + FORCE_REPORT_MARGIN)
        self._stop_reaper()
        if self.health:
            self.health.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        left = len(self.spool.job_ids())
        if left:
            log.info(
                "%d result(s) left in spool %s; they are sent on next start",
                left,
                self.spool.directory,
            )
        log.info("agent %s stopped", self.config.agent_name)
        gc.freeze()  # the process exits next: skip the final full collection
        return self.lifecycle.exit_code
