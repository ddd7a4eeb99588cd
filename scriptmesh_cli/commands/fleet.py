"""``scriptmesh agents list|scripts|pause|resume|drain``: the fleet and its control."""

from __future__ import annotations

import click

from scriptmesh_cli.commands import hub
from scriptmesh_cli.render import json_option, print_json, print_table, short_time, styled


def register(group: click.Group) -> None:
    group.add_command(agents_group)


@click.group("agents")
def agents_group() -> None:
    """The agents and their health."""


@agents_group.command("list")
@click.option("--tag", default=None, help="Only agents carrying this tag.")
@click.option("--status", default=None, type=click.Choice(["online", "offline", "draining"]))
@click.option("--name", default=None, help="Only agents whose name contains this.")
@json_option
def list_agents(tag: str | None, status: str | None, name: str | None, as_json: bool) -> None:
    """Every agent (keyed by name in --json, as GET /agents answers)."""
    fleet = hub().get("/agents", tag=tag, status=status, name=name)
    if as_json:
        print_json(fleet)
        return
    print_table(("AGENT", "STATUS", "TAGS", "RUNNING", "SCRIPTS", "LAST HEARTBEAT"), (
        (name, styled("draining" if a.get("draining") and a.get("status") == "online"
                      else a.get("status")),
         ",".join(a.get("tags") or []), len(a.get("running_jobs") or []),
         len(a.get("scripts") or []), short_time(a.get("last_heartbeat")))
        for name, a in fleet.items()))


@agents_group.command("scripts")
@click.argument("agent")
@json_option
def agent_scripts(agent: str, as_json: bool) -> None:
    """What AGENT may run: its manifest's scripts and flows."""
    found = hub().get("/get-scripts", agent=agent)
    if as_json:
        print_json(found)
        return
    rows = [(s["name"], "script", s.get("description")) for s in found.get("scripts") or []]
    rows += [(f.get("name"), "flow", f.get("description")) for f in found.get("flows") or []]
    print_table(("NAME", "KIND", "DESCRIPTION"), rows)


def _agent_action(action: str, doc: str, takes_note: bool) -> click.Command:
    """``scriptmesh agents pause|resume|drain AGENT``: one POST, then the agent's state."""
    @agents_group.command(action, help=doc)
    @click.argument("agent")
    @click.option("--note", default=None, hidden=not takes_note, help="Why (shown in /agents).")
    @click.option("--until", default=None, hidden=action != "pause",
                  help="ISO 8601 instant the pause ends by itself.")
    @json_option
    def command(agent: str, note: str | None, until: str | None, as_json: bool) -> None:
        body = {key: value for key, value in (("note", note), ("until", until)) if value}
        found = hub().post(f"/agents/{agent}/{action}", body if takes_note else None)
        if as_json:
            print_json(found)
        else:
            paused = " (paused)" if found.get("paused") else ""
            click.echo(f"{agent}: {found.get('status')}{paused}")
    return command


_agent_action("pause", "Give AGENT no new job until resumed; running jobs finish.", True)
_agent_action("resume", "Resume a paused or draining AGENT.", False)
_agent_action("drain", "Pause AGENT, then deregister it once it runs nothing.", True)
