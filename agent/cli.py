"""Command line: ``scriptmesh-agent start`` and ``scriptmesh-agent check-manifest``."""

from __future__ import annotations

import logging
import os
import sys

import click

from agent import __version__
from agent.config import DEFAULT_MANIFEST_PATH, DEFAULT_SCRIPTS_DIR, ConfigError, load_config
from agent.flows.local import run_flow_cli
from agent.lifecycle import EXIT_CONFIG
from agent.manifest import ManifestError, load_manifest

PROG = "scriptmesh-agent"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fail(message: str, exit_code: int = EXIT_CONFIG) -> None:
    """Print one ``scriptmesh-agent: error: ...`` line on stderr and exit non-zero."""
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(exit_code)


def setup_logging(level: str) -> None:
    """One line per event on stderr."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """ScriptMesh agent: runs whitelisted scripts for a ScriptMesh hub (outbound only)."""


@cli.command()
@click.option("--agent-name", help="Unique agent name [env AGENT_NAME, required].")
@click.option("--orchestrator-url", help="Hub URL [env ORCHESTRATOR_URL, http://localhost:5000].")
@click.option("--api-key", help="API key sm_live_... [env API_KEY]; prefer the env variable.")
@click.option("--heartbeat-interval", help="Seconds between heartbeats [HEARTBEAT_INTERVAL, 60].")
@click.option("--scripts-dir", help="Directory of runnable scripts [SCRIPTS_DIR, /scripts].")
@click.option("--manifest", "manifest_path", help="Manifest file [MANIFEST_PATH].")
@click.option("--tags", help="Comma-separated tags [AGENT_TAGS].")
@click.option("--workers", help="Concurrent jobs [WORKERS, 4].")
@click.option("--agent-port", help="Local /healthz and /readyz port, 0 = off [AGENT_PORT, 8001].")
@click.option("--spool-dir", help="Where undelivered results wait [SPOOL_DIR].")
@click.option("--poll-wait", help="Long-poll seconds [POLL_WAIT, 25].")
@click.option("--output-cap-bytes", help="Per-stream output cap [OUTPUT_CAP_BYTES, 1 MiB].")
@click.option("--drain-timeout", help="Seconds to let jobs finish on SIGTERM [DRAIN_TIMEOUT, 30].")
@click.option("--ca-bundle", help="CA bundle file to verify the hub's TLS [CA_BUNDLE].")
@click.option(
    "--log-level",
    default=lambda: os.environ.get("LOG_LEVEL", "INFO"),
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log level [LOG_LEVEL, INFO].",
)
def start(log_level: str, **flags: str | None) -> None:
    """Register with the hub and run jobs until SIGTERM/SIGINT."""
    from agent.daemon import Agent, StartupError

    try:
        config = load_config(flags)
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(log_level)
    try:
        agent = Agent(config)
        code = agent.run()
    except StartupError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    if agent.lifecycle.fatal:
        click.echo(f"{PROG}: error: {agent.lifecycle.fatal}", err=True)
    sys.exit(code)


@cli.command("check-manifest")
@click.option(
    "--manifest",
    "manifest_path",
    envvar="MANIFEST_PATH",
    default=DEFAULT_MANIFEST_PATH,
    show_default=True,
    help="Manifest file.",
)
@click.option(
    "--scripts-dir",
    envvar="SCRIPTS_DIR",
    default=DEFAULT_SCRIPTS_DIR,
    show_default=True,
    help="Directory the script paths must stay inside.",
)
def check_manifest(manifest_path: str, scripts_dir: str) -> None:
    """Validate a manifest and print its entries; exit 1 if anything is refused."""
    try:
        manifest = load_manifest(manifest_path, scripts_dir)
    except ManifestError as exc:
        fail(str(exc), 1)
    errors = list(manifest.errors)
    ok = 0
    for kind, entries in (("script", manifest.scripts), ("flow", manifest.flows)):
        for entry in entries.values():
            problems = flow_problems(entry.path) if kind == "flow" else []
            if problems:  # validated exactly as run-flow and the agent load it
                errors += [f"flows[{entry.name}] refused: {p}" for p in problems]
                continue
            ok += 1
            runner = " ".join(entry.argv())
            click.echo(f"ok      {kind:6} {entry.name:24} {runner}  # {entry.description}")
    for error in errors:
        click.echo(f"refused {error}")
    click.echo(f"{ok} entr{'y' if ok == 1 else 'ies'} ok, {len(errors)} refused")
    sys.exit(1 if errors else 0)


def flow_problems(path: str) -> list[str]:
    """Every problem ``run-flow`` would report for the flow file at ``path``."""
    from agent.flows.errors import FlowError, FlowSchemaError
    from agent.flows.schema import load_flow_file

    try:
        load_flow_file(path)
    except FlowSchemaError as exc:
        return exc.errors
    except FlowError as exc:
        return [str(exc)]
    return []


cli.add_command(run_flow_cli)  # scriptmesh-agent run-flow FILE --var k=v


def main() -> None:
    """Console-script entry point."""
    cli(prog_name=PROG)


if __name__ == "__main__":
    main()
