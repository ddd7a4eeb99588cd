"""``scriptmesh keys list|create|revoke`` over HTTP; ``keys rotate|status`` act on the database."""

from __future__ import annotations

import click

from scriptmesh_cli.commands import hub
from scriptmesh_cli.render import json_option, print_json, print_table, short_time

#: Subcommands that re-encrypt stored secrets on the hub's host (``orchestrator.commands.keys``).
ADMIN_SUBCOMMANDS = {
    "rotate": "Admin: re-encrypt stored secrets under the first ENCRYPTION_KEY.",
    "status": "Admin: how many stored secrets use each encryption key.",
}
SCOPES = ("admin", "operator", "read", "agent")


def register(group: click.Group) -> None:
    group.add_command(keys_group)


class KeysGroup(click.Group):
    """HTTP subcommands plus the admin ones, imported only when they run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands) + list(ADMIN_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in ADMIN_SUBCOMMANDS:
            from scriptmesh_cli.main import load_admin_commands

            return load_admin_commands(f"keys {name}")["keys"].get_command(  # type: ignore
                ctx, name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, c.get_short_help_str()) for n, c in sorted(self.commands.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows + list(ADMIN_SUBCOMMANDS.items()))


@click.group("keys", cls=KeysGroup)
@click.pass_context
def keys_group(ctx: click.Context) -> None:
    """API keys (list, create, revoke); `keys rotate` re-encrypts stored secrets."""
    if ctx.invoked_subcommand in ADMIN_SUBCOMMANDS:
        from scriptmesh_cli.main import prepare_admin

        prepare_admin(ctx)


@keys_group.command("list")
@json_option
def list_keys(as_json: bool) -> None:
    """The tenant's API keys (prefixes only, never the keys)."""
    found = hub().get("/auth/api-keys")
    if as_json:
        print_json(found)
        return
    print_table(("ID", "PREFIX", "NAME", "SCOPE", "AGENT", "CREATED", "LAST USED", "REVOKED"), (
        (k["id"], k.get("key_prefix"), k.get("name"), k.get("scope"), k.get("agent_name"),
         short_time(k.get("created_at")), short_time(k.get("last_used_at")),
         "yes" if k.get("revoked") else "") for k in found))


@keys_group.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. 'web-1'.")
@click.option("--scope", type=click.Choice(SCOPES), default="operator", show_default=True,
              help="agent: for one agent (bound to the first name it registers).")
@click.option("--expires-days", type=click.IntRange(1), default=None)
@json_option
def create_key(name: str, scope: str, expires_days: int | None, as_json: bool) -> None:
    """Create an API key; the key is printed once, alone on the last line of stdout.

    KEY=$(scriptmesh keys create --name web-1 --scope agent | tail -1)
    """
    body = {"name": name, "scope": scope}
    if expires_days:
        body["expires_days"] = expires_days
    created = hub().post("/auth/api-keys", body)
    if as_json:
        print_json(created)
        return
    click.echo(f"Created {created['scope']} key {created['id']} ({created['name']}). "
               f"{created.get('warning', '')}".strip(), err=True)
    click.echo(created["key"])


@keys_group.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke an API key: its next request gets 401."""
    hub().call("DELETE", f"/auth/api-keys/{key_id}")
    click.echo(f"Revoked {key_id}.")
