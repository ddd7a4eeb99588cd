"""``scriptmesh login`` / ``logout``: a refreshable session stored in ``~/.config/scriptmesh``."""

from __future__ import annotations

import contextlib

import click

from scriptmesh_cli import settings
from scriptmesh_cli.client import HubClient, HubError, error_from
from scriptmesh_cli.commands import TARGET_KEY


def register(group: click.Group) -> None:
    group.add_command(login_command)
    group.add_command(logout_command)


@click.command("login")
@click.option("--email", prompt=True, help="Your login.")
@click.option("--password", prompt=True, hide_input=True,
              help="Prompted for when not given (keep it out of shell history).")
@click.pass_context
def login_command(ctx: click.Context, email: str, password: str) -> None:
    """Log in to the hub; later commands use (and refresh) the stored session."""
    target = ctx.meta[TARGET_KEY]
    client = HubClient(settings.Target(target.url))
    response = client.http.post(target.url + "/auth/login", timeout=30,
                                json={"email": email, "password": password})
    if not response.ok:
        raise error_from(response)
    pair = response.json()
    path = settings.save_session(target.url, {"email": email,
                                              "access_token": pair["access_token"],
                                              "refresh_token": pair["refresh_token"]})
    click.echo(f"Logged in to {target.url} as {email} (session in {path}).")


@click.command("logout")
@click.pass_context
def logout_command(ctx: click.Context) -> None:
    """End the stored session (on the hub too) and forget it."""
    target = ctx.meta[TARGET_KEY]
    session = settings.load_session(target.url)
    if not session:
        click.echo(f"Not logged in to {target.url}.")
        return
    with contextlib.suppress(HubError):  # an expired session is over anyway
        HubClient(settings.Target(target.url, session["access_token"], "session",
                                  session=session)).post(
            "/auth/logout", {"refresh_token": session.get("refresh_token")})
    settings.save_session(target.url, None)
    click.echo(f"Logged out of {target.url}.")
