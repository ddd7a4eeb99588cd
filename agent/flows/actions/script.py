"""``script``: run a manifest-whitelisted script as a step, through a :data:`ScriptRunner`.

:class:`ManifestScriptRunner` is the real runner: it looks the script up in the
agent's manifest and runs it with ``agent.process`` exactly as a script job runs
(own process group, no shell, params as environment, group killed on timeout).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.config import DEFAULT_KILL_GRACE, DEFAULT_OUTPUT_CAP_BYTES
from agent.flows.context import ActionContext, ActionSpec
from agent.flows.errors import StepFailed
from agent.flows.interpolate import as_text
from agent.manifest import ManifestEntry, ManifestError, load_manifest
from agent.process import ScriptProcess
from agent.runner import JobRefused, build_env

POLL_SLICE = 0.1
SCRIPT_SCHEMA = {
    "required": ["script"],
    "properties": {"script": {"type": "string", "minLength": 1},
                   "params": {"type": ["object", "string"]},
                   "allow_failure": {"type": ["boolean", "string"]}},
}


class ManifestScriptRunner:
    """Run whitelisted scripts for ``script`` steps; ``lookup(name)`` is the whitelist."""

    def __init__(
        self,
        lookup: Callable[[str], ManifestEntry | None],
        scripts_dir: str,
        *,
        job_id: str = "local",
        output_cap: int = DEFAULT_OUTPUT_CAP_BYTES,
        kill_grace: float = DEFAULT_KILL_GRACE,
        base_env: Mapping[str, str] | None = None,
        secret: str = "",
        allow_undeclared: bool = False,
    ) -> None:
        self.lookup = lookup
        self.scripts_dir = scripts_dir
        self.job_id = job_id
        self.output_cap = output_cap
        self.kill_grace = kill_grace
        self.base_env = os.environ if base_env is None else base_env
        self.secret = secret
        self.allow_undeclared = allow_undeclared

    @classmethod
    def from_manifest_file(cls, manifest_path: str, scripts_dir: str) -> ManifestScriptRunner:
        """A runner over the manifest file's scripts (for local ``run-flow``)."""
        try:
            manifest = load_manifest(manifest_path, scripts_dir)
        except ManifestError as exc:
            raise StepFailed(str(exc)) from None
        return cls(manifest.scripts.get, scripts_dir,
                   allow_undeclared=os.environ.get("ALLOW_UNDECLARED_PARAMS") == "true")

    def __call__(
        self,
        name: str,
        params: dict[str, str],
        timeout: float | None,
        should_stop: Callable[[], bool],
    ) -> dict[str, Any]:
        """Run ``name`` to completion (or until ``timeout`` / ``should_stop``)."""
        entry = self.lookup(name)
        if entry is None:
            raise StepFailed(f"script_not_in_manifest: {name}")
        try:
            env = build_env(self.base_env, entry, params, self.job_id, self.secret,
                            self.allow_undeclared)
            proc = ScriptProcess(entry.argv(), env, self.scripts_dir, self.output_cap)
        except JobRefused as exc:
            raise StepFailed(str(exc)) from None
        except OSError as exc:
            raise StepFailed(f"spawn_failed: {exc.strerror or exc}") from None
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = False
        while (code := proc.poll(POLL_SLICE)) is None:
            if should_stop() or (deadline is not None and time.monotonic() >= deadline):
                code, stopped = proc.kill_process_group(self.kill_grace), True
                break
        proc.finish_output()
        return {"exit_code": code, "stdout": proc.stdout.text(), "stderr": proc.stderr.text(),
                "killed": stopped}


def script(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run ``script`` with ``params``; result ``stdout, stderr, exit_code, duration_ms``.

    A non-zero exit fails the step unless ``allow_failure: true`` (then assert on it).
    """
    runner = ctx.engine.script_runner
    if runner is None:
        raise StepFailed("script: script steps are not allowed here (no script runner; an "
                         "inline flow needs ALLOW_INLINE_FLOW_SCRIPTS=true)")
    name = str(config["script"])
    params = {str(key): as_text(value) for key, value in (config.get("params") or {}).items()}
    started = time.monotonic()
    outcome = runner(name, params, ctx.remaining(), ctx.cancelled)
    result = {
        "exit_code": outcome.get("exit_code"),
        "stdout": outcome.get("stdout", ""),
        "stderr": outcome.get("stderr", ""),
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
    if outcome.get("killed"):
        raise StepFailed(f"script {name!r} was stopped (timeout or cancel)", result)
    if result["exit_code"] != 0 and not config.get("allow_failure"):
        raise StepFailed(f"script {name!r} exited with code {result['exit_code']}", result)
    return result


ACTIONS = {"script": ActionSpec(
    script, config_schema=SCRIPT_SCHEMA, result_keys=("exit_code", "stdout", "stderr"),
    example={"script": "backup.sh", "params": {"target": "/tmp/out"}})}
