"""``scriptmesh fanout``: one script on many agents with live progress, then results grouped
by identical output; ``scriptmesh fanouts list|show``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from scriptmesh_cli.commands import hub, key_values, split_list
from scriptmesh_cli.commands.run import EXIT_CANCELLED, notice
from scriptmesh_cli.render import (
    console,
    has_rich,
    json_option,
    print_json,
    print_table,
    short_time,
)

POLL_INTERVAL = 0.5
FAILED = ("failed", "timeout", "expired", "cancelled")
#: How many lines of a group's output the summary shows.
OUTPUT_LINES = 10


def register(group: click.Group) -> None:
    group.add_command(fanout_command)
    group.add_command(fanouts_group)


def limit_value(value: str | None) -> int | str | None:
    """``"5"`` -> 5, ``"10%"`` stays a string (the API takes both)."""
    if value is None:
        return None
    return value if value.endswith("%") else int(value)


@click.command("fanout")
@click.argument("script", required=False)
@click.option("--agents", default=None, help="Comma-separated agent names.")
@click.option("--tag", "tags", multiple=True,
              help="Agents carrying this tag (repeatable: all of them).")
@click.option("--stage", "stages", multiple=True, metavar="TAG",
              help="Canary stage: the agents with this tag (repeatable, in order).")
@click.option("--flow", default=None, help="Run this flow instead of a script.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("-v", "--var", "variables", multiple=True, metavar="NAME=VALUE")
@click.option("--max-concurrency", default=None, metavar="N|N%")
@click.option("--max-errors", default=None, metavar="N|N%",
              help="Cancel the jobs not started yet once more than this failed.")
@click.option("--timeout", type=click.IntRange(1), default=None)
@click.option("--detach", is_flag=True, help="Print the fan-out id and return at once.")
@json_option
def fanout_command(script: str | None, agents: str | None, tags: tuple[str, ...],
                   stages: tuple[str, ...], flow: str | None, params: tuple[str, ...],
                   variables: tuple[str, ...], max_concurrency: str | None,
                   max_errors: str | None, timeout: int | None, detach: bool,
                   as_json: bool) -> None:
    """Run SCRIPT on many agents: live progress, then results grouped by identical output.

    Exits 1 if any target failed. Ctrl-C cancels the fan-out; a second Ctrl-C detaches.
    """
    if bool(script) == bool(flow):
        raise click.UsageError("Give a SCRIPT or --flow NAME (not both).")
    if not (agents or tags or stages):
        raise click.UsageError("Choose targets with --agents, --tag or --stage.")
    body: dict[str, Any] = {}
    if flow:
        body.update(run_flow=flow, variables=key_values(variables, "-v"))
    else:
        body.update(run_script=script, params=key_values(params, "-p"))
    for field, value in (("agents", split_list(agents) or None), ("tags", list(tags) or None),
                         ("stages", [{"tags": [t]} for t in stages] or None),
                         ("max_concurrency", limit_value(max_concurrency)),
                         ("max_errors", limit_value(max_errors)), ("timeout", timeout)):
        if value is not None:
            body[field] = value
    created = hub().post("/fanouts", body)
    fanout_id = created["fanout_id"]
    for skipped in created.get("skipped") or []:
        notice(f"skipped {skipped['agent']}: {skipped['reason']}")
    if detach:
        click.echo(fanout_id)
        return
    report = watch(fanout_id, quiet=as_json)
    if as_json:
        print_json(report)
    else:
        print_groups(report)
    sys.exit(1 if any(report["counts"].get(s) for s in FAILED) else 0)


def progress_line(report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    done = counts.get("success", 0)
    failed = sum(counts.get(s, 0) for s in FAILED)
    return (f"{report['fanout_id']}: {done + failed}/{report['total']} finished - "
            f"done {done}, failed {failed}, running {counts.get('running', 0)}, "
            f"pending {counts.get('pending', 0)}")


def watch(fanout_id: str, quiet: bool = False) -> dict[str, Any]:
    """Poll the fan-out until done, showing progress (a bar on a TTY, lines otherwise)."""
    client, interrupts = hub(), 0
    bar = ProgressBar() if not quiet and sys.stderr.isatty() and has_rich() else None
    last = None
    while True:
        try:
            report = client.get(f"/fanouts/{fanout_id}")
            line = progress_line(report)
            if bar is not None:
                bar.update(report)
            elif not quiet and line != last:
                notice(line)
            last = line
            if report.get("done"):
                if bar is not None:
                    bar.stop()
                return report
            time.sleep(POLL_INTERVAL)
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts > 1:
                notice(f"Detached; fan-out {fanout_id} goes on "
                       f"(`scriptmesh fanouts show {fanout_id}`).")
                sys.exit(EXIT_CANCELLED)
            notice(f"Cancelling fan-out {fanout_id} (Ctrl-C again to detach)...")
            client.post(f"/fanouts/{fanout_id}/cancel")


class ProgressBar:
    """rich's progress bar: finished of total, with the counts as its description."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=console(stderr=True),
                                 transient=False)
        self.task = self.progress.add_task("starting", total=None)
        self.progress.start()

    def update(self, report: dict[str, Any]) -> None:
        counts = report.get("counts") or {}
        failed = sum(counts.get(s, 0) for s in FAILED)
        self.progress.update(self.task, total=report["total"],
                             completed=counts.get("success", 0) + failed,
                             description=(f"[green]done {counts.get('success', 0)}[/] "
                                          f"[red]failed {failed}[/] "
                                          f"[cyan]running {counts.get('running', 0)}[/] "
                                          f"pending {counts.get('pending', 0)}"))

    def stop(self) -> None:
        self.progress.stop()


def print_groups(report: dict[str, Any]) -> None:
    """Each group of identical (status, exit code, output), largest first; outliers listed."""
    groups = report.get("diff") or []
    for index, group in enumerate(groups):
        label = "most agents" if index == 0 and len(groups) > 1 else (
            "outliers" if index else "all agents")
        exit_code = group.get("exit_code")
        click.echo(f"== {group['count']} agent(s), {group['status']}"
                   + (f", exit {exit_code}" if exit_code is not None else "") + f" ({label})")
        click.echo("   " + ", ".join(group.get("agents") or []))
        lines = (group.get("stdout") or "").splitlines()
        for line in lines[:OUTPUT_LINES]:
            click.echo(f"   | {line}")
        if len(lines) > OUTPUT_LINES:
            click.echo(f"   | ... {len(lines) - OUTPUT_LINES} more line(s)")
    click.echo(progress_line(report).split(": ", 1)[1])


@click.group("fanouts")
def fanouts_group() -> None:
    """List and show fan-outs."""


@fanouts_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
def list_fanouts(limit: int, as_json: bool) -> None:
    """The newest fan-outs."""
    page = hub().get("/fanouts", limit=limit)
    if as_json:
        print_json(page)
        return
    print_table(("FANOUT", "SCRIPT", "STATUS", "TOTAL", "SUCCESS", "FAILED", "CREATED"), (
        (f["fanout_id"], f.get("script"), f.get("status"), f.get("total"),
         (f.get("counts") or {}).get("success", 0),
         sum((f.get("counts") or {}).get(s, 0) for s in FAILED), short_time(f.get("created_at")))
        for f in page.get("fanouts") or []))


@fanouts_group.command("show")
@click.argument("fanout_id")
@json_option
def show_fanout(fanout_id: str, as_json: bool) -> None:
    """A fan-out's progress and its results grouped by identical output."""
    report = hub().get(f"/fanouts/{fanout_id}")
    if as_json:
        print_json(report)
        return
    print_table(("AGENT", "JOB", "STATUS", "EXIT", "MS", "STAGE"), (
        (a.get("agent"), a.get("job_id"), a.get("status"), a.get("exit_code"),
         a.get("duration_ms"), a.get("stage")) for a in report.get("agents") or []))
    print_groups(report)


def _rollout_action(action: str, doc: str) -> click.Command:
    """``scriptmesh fanouts approve|pause|resume FANOUT_ID``: one POST, then the report."""
    @fanouts_group.command(action, help=doc)
    @click.argument("fanout_id")
    @json_option
    def command(fanout_id: str, as_json: bool) -> None:
        report = hub().post(f"/fanouts/{fanout_id}/{action}")
        if as_json:
            print_json(report)
        else:
            click.echo(f"{fanout_id}: {report.get('status')}")
    return command


_rollout_action("approve", "Let a rollout waiting at an approval gate start its next stage.")
_rollout_action("pause", "Start no new target of the fan-out (running ones finish).")
_rollout_action("resume", "Resume a paused fan-out.")


@fanouts_group.command("rerun")
@click.argument("fanout_id")
@click.option("--only", "only", multiple=True, show_default=True,
              type=click.Choice(["failed", "not_started", "cancelled", "timeout", "lost"]),
              help="Which targets to run again (repeatable) [default: failed, not_started].")
@json_option
def rerun_fanout(fanout_id: str, only: tuple[str, ...], as_json: bool) -> None:
    """A new fan-out over just FANOUT_ID's failed and not-started targets (``rerun_of``)."""
    created = hub().post(f"/fanouts/{fanout_id}/rerun",
                         {"only": list(only)} if only else {})
    if as_json:
        print_json(created)
    else:
        click.echo(f"{created['fanout_id']}: rerun of {fanout_id}, "
                   f"{len(created.get('jobs') or [])} target(s)")
