"""The ``scriptmesh`` command: user commands over HTTP, and the hub's admin commands.

Importing this module imports click and nothing else heavy: ``--help`` never
builds the Flask app, starts a process or writes a file. Admin commands
(``orchestrator.cli``) are imported only when one of them runs.
"""

from __future__ import annotations

import os

import click

from scriptmesh_cli import settings
from scriptmesh_cli.commands import TARGET_KEY, fanout, fleet, jobs, keys, login, run, schedules

#: Admin commands, with the one-line help shown before they are imported.
ADMIN_COMMANDS = {
    "dev": "Run everything on this machine: Redis, hub, worker, scheduler, local agent.",
    "db": "Database migrations (`scriptmesh db upgrade`).",
    "users": "Manage user accounts (`users create`).",
    "api-keys": "Create an API key directly in the database (`api-keys create`).",
    "worker": "Run an RQ worker on the background queue (webhooks, notifications).",
    "scheduler": "Run periodic upkeep (schedules, leases, offline agents).",
}


class ScriptMeshGroup(click.Group):
    """User commands first; admin commands under their own heading, loaded on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands) + list(ADMIN_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in ADMIN_COMMANDS:
            return load_admin_commands(name).get(name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        user = [(name, cmd.get_short_help_str(limit)) for name, cmd in sorted(self.commands.items())
                if not cmd.hidden]
        with formatter.section("Commands (talk to a hub over HTTP)"):
            formatter.write_dl(user)
        with formatter.section("Admin commands (on the hub's host; need its database)"):
            formatter.write_dl(list(ADMIN_COMMANDS.items()))


def load_admin_commands(name: str) -> dict[str, click.Command]:
    """The hub's admin commands; one line (not a traceback) on a CLI- or agent-only install."""
    try:
        from orchestrator.cli import admin_commands
    except ImportError as exc:
        raise click.ClickException(
            f"`scriptmesh {name}` runs the hub, which is not installed here ({exc.name} is "
            "missing): pip install 'scriptmesh[hub]'.") from None
    return admin_commands()


def prepare_admin(ctx: click.Context) -> None:
    """Give an admin command the app factory (unless a test runner already did); it
    refuses in one line when it needs a database that is not there."""
    from flask.cli import ScriptInfo

    from orchestrator.cli import script_info

    if not isinstance(ctx.obj, ScriptInfo):
        ctx.obj = script_info()


@click.group(cls=ScriptMeshGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SCRIPTMESH_URL", default=settings.DEFAULT_URL, show_default=True,
              help="The hub [env SCRIPTMESH_URL].")
@click.option("--token", envvar="SCRIPTMESH_TOKEN", default=None,
              help="An API key (sm_live_...) or access token [env SCRIPTMESH_TOKEN; default: "
                   "the `scriptmesh login` session, or beside `scriptmesh dev` its "
                   "credentials].")
@click.version_option("0.1.0", prog_name="scriptmesh")
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None) -> None:
    """ScriptMesh: run whitelisted scripts on your agents, follow jobs, fan out.

    \b
      scriptmesh run web-1 backup.sh -p target=/tmp/out
      scriptmesh fanout deploy.sh --tag production -p version=2.4.1 --max-errors 1
      scriptmesh logs -f job_31c9...
    """
    if ctx.invoked_subcommand in ADMIN_COMMANDS:
        prepare_admin(ctx)
        return
    from_env = token is not None and token == os.environ.get("SCRIPTMESH_TOKEN")
    ctx.meta[TARGET_KEY] = settings.resolve(url, token, from_env)


for _module in (run, fanout, jobs, fleet, schedules, keys, login):
    _module.register(main)
