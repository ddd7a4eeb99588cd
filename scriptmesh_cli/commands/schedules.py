"""``scriptmesh schedules list|create|pause|resume|delete|run-now``."""

from __future__ import annotations

from typing import Any

import click

from scriptmesh_cli.commands import hub, key_values, split_list
from scriptmesh_cli.render import json_option, print_json, print_table, short_time


def register(group: click.Group) -> None:
    group.add_command(schedules_group)


@click.group("schedules")
def schedules_group() -> None:
    """Cron schedules."""


def schedule_rows(items: list[dict[str, Any]]) -> None:
    print_table(("ID", "NAME", "TARGET", "SCRIPT", "CRON", "TZ", "ENABLED", "NEXT"), (
        (s["id"], s.get("name"), s.get("agent") or s.get("pool") or
         ",".join((s.get("agents") or []) + [f"tag:{t}" for t in s.get("tags") or []]),
         s.get("run_flow") or s.get("script"), s.get("cron_expression"), s.get("timezone"),
         "yes" if s.get("enabled") else "no", short_time(s.get("next_fire")))
        for s in items))


@schedules_group.command("list")
@json_option
def list_schedules(as_json: bool) -> None:
    """The tenant's schedules."""
    found = hub().get("/schedules")
    if as_json:
        print_json(found)
        return
    schedule_rows(found.get("schedules") or [])


@schedules_group.command("create")
@click.argument("cron_expression")
@click.argument("script", required=False)
@click.option("--agent", default=None)
@click.option("--agents", default=None, help="Comma-separated agent names (a fan-out).")
@click.option("--tag", "tags", multiple=True, help="Agents carrying this tag (repeatable).")
@click.option("--flow", default=None, help="Run this flow instead of a script.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("-v", "--var", "variables", multiple=True, metavar="NAME=VALUE")
@click.option("--name", default=None)
@click.option("--timezone", default=None, help="IANA zone, e.g. Europe/Paris [UTC].")
@click.option("--timeout", type=click.IntRange(1), default=None)
@json_option
def create_schedule(cron_expression: str, script: str | None, agent: str | None,
                    agents: str | None, tags: tuple[str, ...], flow: str | None,
                    params: tuple[str, ...], variables: tuple[str, ...], name: str | None,
                    timezone: str | None, timeout: int | None, as_json: bool) -> None:
    """Run SCRIPT (or --flow) on a cron schedule: scriptmesh schedules create '0 2 * * *'
    backup.sh --agent web-1."""
    body: dict[str, Any] = {"cron_expression": cron_expression}
    for field, value in (("agent", agent), ("agents", split_list(agents) or None),
                         ("tags", list(tags) or None), ("name", name),
                         ("timezone", timezone), ("timeout", timeout)):
        if value:
            body[field] = value
    if flow:
        body.update(run_flow=flow, variables=key_values(variables, "-v"))
    elif script:
        body.update(script=script, params=key_values(params, "-p"))
    else:
        raise click.UsageError("Give a SCRIPT or --flow NAME.")
    created = hub().post("/schedules", body)
    if as_json:
        print_json(created)
    else:
        schedule_rows([created])


def _action(path: str, done: str) -> Any:
    @click.argument("schedule_id")
    @json_option
    def command(schedule_id: str, as_json: bool) -> None:
        answer = hub().post(f"/schedules/{schedule_id}/{path}")
        if as_json:
            print_json(answer)
        else:
            click.echo(f"{schedule_id} {done}")
    return command


schedules_group.command("pause", help="Stop a schedule from firing.")(_action("pause", "paused"))
schedules_group.command("resume", help="Let a paused schedule fire again.")(
    _action("resume", "resumed"))
schedules_group.command("run-now", help="Fire a schedule once, now.")(
    _action("run-now", "fired"))


@schedules_group.command("delete")
@click.argument("schedule_id")
def delete_schedule(schedule_id: str) -> None:
    """Delete a schedule (its past jobs stay)."""
    hub().call("DELETE", f"/schedules/{schedule_id}")
    click.echo(f"{schedule_id} deleted")
