"""Run one job assignment end to end: check, acknowledge, execute, stream, report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.backoff import Backoff
from agent.client import AuthRejected, HubClient, HubUnavailable, JobRejected
from agent.jobs import JobHandle
from agent.log_streamer import LogStreamer
from agent.manifest import ManifestEntry, ManifestStore
from agent.params import ParamError, param_env
from agent.process import ScriptProcess
from agent.reporter import ResultReporter

log = logging.getLogger(__name__)

SECRET_ENV_VARS = ("API_KEY",)


class JobRefused(Exception):
    """The job must not run; the message becomes the result's ``error``."""


def utc_now_iso() -> str:
    """Return the current time as ISO 8601 UTC with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_env(
    base: Mapping[str, str], entry: ManifestEntry, params: Mapping[str, Any], job_id: str,
    secret: str = "", allow_undeclared: bool = False,
) -> dict[str, str]:
    """Return the child's environment: the agent's (minus secrets) + params + SCRIPTMESH_JOB_ID.

    Only declared params reach the script, under their declared names
    (``agent/params.py``); values are passed exactly as given (there is no shell).
    """
    env = {
        k: v for k, v in base.items() if k not in SECRET_ENV_VARS and not (secret and v == secret)
    }
    try:
        env.update(param_env(entry.params, params, allow_undeclared))
    except ParamError as exc:
        raise JobRefused(f"invalid_params: {entry.name}: {exc}") from None
    env["SCRIPTMESH_JOB_ID"] = job_id
    return env


def refused_result(error: str) -> dict[str, Any]:
    """Return a ``failed`` result for a job that was never started."""
    return {
        "status": "failed",
        "exit_code": None,
        "stdout": "",
        "stderr": "",
        "truncated": {"stdout": False, "stderr": False},
        "duration_ms": 0,
        "started_at": utc_now_iso(),
        "error": error,
    }


@dataclass
class RunnerSettings:
    """The knobs a runner needs from the agent config."""

    scripts_dir: str
    output_cap_bytes: int
    kill_grace: float
    api_key: str = ""
    stream_interval: float = 1.0
    backoff_base: float = 5.0
    backoff_cap: float = 60.0


class JobRunner:
    """Turns an ASSIGNMENT into a reported result; one call per job, safe to run concurrently."""

    def __init__(
        self,
        settings: RunnerSettings,
        manifest: ManifestStore,
        client: HubClient,
        reporter: ResultReporter,
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.client = client
        self.reporter = reporter

    def run(self, job: Mapping[str, Any], handle: JobHandle) -> dict[str, Any] | None:
        """Run ``job``; return the reported result, or None when the hub withdrew it."""
        job_id = handle.job_id
        kind = job.get("kind", "script")
        log.info("job %s received: %s=%s", job_id, kind, job.get("flow" if kind == "flow"
                                                                  else "script"))
        try:
            prepared = self._prepare(job, job_id)
        except JobRefused as exc:
            log.warning("job %s refused: %s", job_id, exc)
            return self._report(job_id, refused_result(str(exc)))
        if not self._acknowledge(job, handle):
            return None
        return self._report(job_id, self._run_prepared(prepared, job.get("timeout"), handle))

    def _run_prepared(self, prepared: Any, timeout: Any, handle: JobHandle) -> dict[str, Any]:
        """Run what ``_prepare`` checked (subclasses run other kinds of work)."""
        entry, env = prepared
        return self._execute(entry, env, timeout, handle)

    def _prepare(self, job: Mapping[str, Any], job_id: str) -> tuple[ManifestEntry, dict[str, str]]:
        if job.get("kind", "script") != "script":
            raise JobRefused(f"unsupported_kind: {job.get('kind')}")
        name = str(job.get("script") or "")
        entry = self.manifest.lookup(name)
        if entry is None:  # the agent is the final authority on what may run here
            raise JobRefused(f"script_not_in_manifest: {name}")
        params = job.get("params") or {}
        if not isinstance(params, Mapping):
            raise JobRefused("invalid_params: params must be an object")
        return entry, build_env(os.environ, entry, params, job_id, self.settings.api_key,
                                self.manifest.allow_undeclared_params)

    def _acknowledge(self, job: Mapping[str, Any], handle: JobHandle) -> bool:
        """Tell the hub we start; retry while the hub is down, until the lease would expire."""
        deadline = _lease_deadline(job.get("lease_expires_at"))
        backoff = Backoff(self.settings.backoff_base, self.settings.backoff_cap)
        while not handle.cancel_event.is_set():
            try:
                self.client.start_job(handle.job_id)
                return True
            except JobRejected as exc:
                log.warning("job %s withdrawn by the hub, not running it: %s", handle.job_id, exc)
                return False
            except HubUnavailable as exc:
                delay = backoff.next_delay()
                if time.time() + delay >= deadline:
                    log.warning(
                        "job %s: could not acknowledge before its lease expired: %s",
                        handle.job_id,
                        exc,
                    )
                    return False
                log.warning(
                    "job %s: hub unreachable (%s), retrying start in %.1fs",
                    handle.job_id,
                    exc,
                    delay,
                )
                handle.cancel_event.wait(delay)
        return False

    def _execute(
        self, entry: ManifestEntry, env: dict[str, str], timeout: Any, handle: JobHandle
    ) -> dict[str, Any]:
        started_at, t0 = utc_now_iso(), time.monotonic()
        try:
            proc = ScriptProcess(
                entry.argv(), env, self.settings.scripts_dir, self.settings.output_cap_bytes
            )
        except OSError as exc:
            result = refused_result(f"spawn_failed: {exc.strerror or exc}")
            return {**result, "started_at": started_at}
        log.info("job %s started: %s pid=%d", handle.job_id, entry.name, proc.pid)
        streamer = LogStreamer(
            {"stdout": proc.stdout.read_live, "stderr": proc.stderr.read_live},
            lambda chunk: self._upload_output(handle, chunk),
            self.settings.stream_interval,
        ).start()
        try:
            status, exit_code, error = self._supervise(proc, _as_timeout(timeout), handle)
        finally:
            streamer.stop()
            proc.finish_output()
        return {
            "status": status,
            "exit_code": exit_code,
            "stdout": proc.stdout.text(),
            "stderr": proc.stderr.text(),
            "truncated": {"stdout": proc.stdout.truncated, "stderr": proc.stderr.truncated},
            "duration_ms": int((time.monotonic() - t0) * 1000),
            "started_at": started_at,
            "error": error,
        }

    def _supervise(
        self, proc: ScriptProcess, timeout: float | None, handle: JobHandle
    ) -> tuple[str, int | None, str | None]:
        """Wait for the process in short slices, killing its group on cancel or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = proc.poll(0.1)
            if code is not None:
                return ("success", 0, None) if code == 0 else ("failed", code, _exit_error(code))
            if handle.cancel_event.is_set():
                code = proc.kill_process_group(self.settings.kill_grace)
                return "cancelled", code, f"cancelled: {handle.cancel_reason}"
            if deadline is not None and time.monotonic() >= deadline:
                code = proc.kill_process_group(self.settings.kill_grace)
                return "timeout", code, f"timed out after {timeout:g}s"

    def _upload_output(self, handle: JobHandle, chunk: dict[str, dict[str, Any]]) -> bool:
        return self._upload_live(
            handle, "output chunk", lambda: self.client.upload_output(handle.job_id, chunk))

    def _upload_live(self, handle: JobHandle, what: str, send: Callable[[], bool]) -> bool:
        """Send live progress (output or flow events); a ``cancel`` answer cancels the job.

        False means "keep it and retry" (hub unreachable); a refusal drops it.
        """
        try:
            if send():
                handle.cancel("requested by the hub")
        except (HubUnavailable, AuthRejected) as exc:
            log.debug("job %s: %s upload deferred: %s", handle.job_id, what, exc)
            return False
        except JobRejected as exc:
            log.warning("job %s: hub refused %s: %s", handle.job_id, what, exc)
        return True

    def _report(self, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
        log.info(
            "job %s finished: status=%s exit_code=%s duration_ms=%s%s",
            job_id,
            result["status"],
            result["exit_code"],
            result["duration_ms"],
            f" error={result['error']}" if result.get("error") else "",
        )
        try:
            self.reporter.report(job_id, result)
        except AuthRejected as exc:
            log.error("result of job %s kept in spool: %s", job_id, exc)
        return result


def _exit_error(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _as_timeout(value: Any) -> float | None:
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        return None
    return timeout if timeout > 0 else None


def _lease_deadline(value: Any) -> float:
    """Return the lease expiry as epoch seconds (+inf when absent or unparsable)."""
    if not isinstance(value, str) or not value:
        return float("inf")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
