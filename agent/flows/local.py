"""Run a flow file locally, printing each step as it runs: ``scriptmesh-agent run-flow``.

The same engine runs flows on the agent, so a flow that works here works there. Local
runs show assertion values (nothing leaves the machine).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import click

from agent.config import DEFAULT_MANIFEST_PATH, DEFAULT_SCRIPTS_DIR
from agent.flows.actions.script import ManifestScriptRunner
from agent.flows.context import ScriptRunner
from agent.flows.engine import FlowEngine
from agent.flows.errors import FlowError, FlowSchemaError
from agent.flows.resolvers import DirectoryResolver
from agent.flows.schema import load_flow_file

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
MARKS = {"step_started": "start", "step_completed": " ok  ", "step_failed": "FAIL ",
         "step_skipped": "skip "}


class StepPrinter:
    """An ``emit`` callback (and log sink) that prints one line per event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "flow_warning":
            return  # printed by the log sink
        if kind.startswith("flow_"):
            counts = event["steps"]
            self._print(f"flow {event['flow']!r} {event['status']} in {event['duration_ms']}ms: "
                        f"{counts['passed']} passed, {counts['failed']} failed, "
                        f"{counts['skipped']} skipped")
            if event["error"]:
                self._print(f"  error: {event['error']}")
            return
        indent = "  " * event["id"].count(".")
        head = f"[{MARKS[kind]}] {indent}{event['id']}"
        if kind == "step_started":
            self._print(f"{head} ({event['action']})")
        elif kind == "step_skipped":
            self._print(f"{head}: {event['reason']}")
        else:
            error = f": {event['error']}" if event["error"] else ""
            self._print(f"{head} {event['duration_ms']}ms{error}")
            for name, value in event["outputs"].items():
                self._print(f"        {indent}{name} = {value!r}")

    def log(self, level: str, message: str, step_id: str) -> None:
        """Log sink: ``[log  ] step: message``."""
        self._print(f"[{level[:5]:<5}] {step_id}: {message}")


def local_script_runner(manifest: str | None = None,
                        scripts_dir: str | None = None) -> ScriptRunner | None:
    """The manifest's scripts (``--manifest`` / ``--scripts-dir``, else $MANIFEST_PATH /
    $SCRIPTS_DIR), or None when there is no manifest."""
    manifest = manifest or os.environ.get("MANIFEST_PATH", DEFAULT_MANIFEST_PATH)
    scripts_dir = scripts_dir or os.environ.get("SCRIPTS_DIR", DEFAULT_SCRIPTS_DIR)
    if not os.path.isfile(manifest):
        return None
    try:
        return ManifestScriptRunner.from_manifest_file(manifest, scripts_dir)
    except FlowError as exc:
        print(f"run-flow: script steps disabled: {exc}", file=sys.stderr)
        return None


def run_flow_command(path: str, variables: dict[str, str], stream: TextIO | None = None,
                     manifest: str | None = None, scripts_dir: str | None = None) -> int:
    """Run the flow at ``path`` with ``variables``; return 0 passed, 1 failed, 2 invalid."""
    out = stream or sys.stdout
    try:
        flow = load_flow_file(path)
    except FlowError as exc:
        problems = exc.errors if isinstance(exc, FlowSchemaError) else [str(exc)]
        print(f"run-flow: invalid flow {path}:", file=out)
        for problem in problems:
            print(f"  - {problem}", file=out)
        return EXIT_INVALID
    printer = StepPrinter(out)
    engine = FlowEngine(
        printer, resolver=DirectoryResolver(os.path.dirname(os.path.abspath(path))),
        script_runner=local_script_runner(manifest, scripts_dir), log_sink=printer.log,
        report_values=True,
    )
    result = engine.run(flow, variables)
    return EXIT_PASSED if result.ok else EXIT_FAILED


def parse_variables(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict.

    :raises click.BadParameter: for an item without ``=``.
    """
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--var")
        variables[name] = value
    return variables


@click.command("run-flow")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A flow variable (repeatable); overrides the flow's env.")
@click.option("--manifest", "manifest", metavar="FILE",
              help="Manifest whose scripts `script` steps may run [MANIFEST_PATH].")
@click.option("--scripts-dir", "scripts_dir", metavar="DIR",
              help="Directory the manifest's script paths are in [SCRIPTS_DIR].")
def run_flow_cli(path: str, pairs: tuple[str, ...], manifest: str | None,
                 scripts_dir: str | None) -> None:
    """Run the flow file PATH locally and print each step as it runs."""
    sys.exit(run_flow_command(path, parse_variables(pairs), manifest=manifest,
                              scripts_dir=scripts_dir))
