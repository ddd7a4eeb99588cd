"""``scriptmesh users create`` and ``scriptmesh api-keys create``: bootstrap without mail."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from orchestrator.errors import ScriptMeshError
from orchestrator.models import Scope


def register(group: click.Group) -> None:
    """Add this module's commands to the ``scriptmesh`` group."""
    group.add_command(users)
    group.add_command(api_keys_group)


def _fail(exc: ScriptMeshError) -> click.ClickException:
    fields = (exc.details or {}).get("fields") or {}
    problems = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return click.ClickException(f"{exc.description} {problems}".strip())


@click.group("users")
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.option("--email", required=True, help="The user's email (their login).")
@click.option("--password", required=True, help="At least 12 characters, not the email.")
@click.option("--tenant", default=None,
              help="A tenant id (ten_...) to join, or the name of a new tenant "
                   "[default: the email's domain].")
@click.option("--admin", is_flag=True, help="Make the user an instance administrator.")
@with_appcontext
def create_user_command(email: str, password: str, tenant: str | None, admin: bool) -> None:
    """Create a verified user (no mail needed) and print its user and tenant ids."""
    from orchestrator.extensions import db
    from orchestrator.models import Tenant
    from orchestrator.services import accounts

    tenant_id = tenant if tenant and db.session.get(Tenant, tenant) is not None else None
    try:
        user = accounts.create_user(email, password, tenant_id=tenant_id,
                                    tenant_name=None if tenant_id else tenant,
                                    verified=True, is_admin=admin)
        db.session.commit()
    except ScriptMeshError as exc:
        db.session.rollback()
        raise _fail(exc) from None
    click.echo(f"user_id: {user.id}")
    click.echo(f"tenant_id: {user.tenant_id}")


@click.group("api-keys")
def api_keys_group() -> None:
    """Manage API keys."""


@api_keys_group.command("create")
@click.option("--email", required=True, help="Owner of the key (its tenant gets the key).")
@click.option("--name", required=True, help="What the key is for, e.g. 'prod-server-1'.")
@click.option("--scope", default=Scope.OPERATOR.value, show_default=True,
              type=click.Choice([scope.value for scope in Scope]))
@click.option("--expires-days", type=click.IntRange(min=1), default=None,
              help="Days until the key expires [default: never].")
@click.option("--pools", default="", help="Agent keys: comma-separated tags the agent may "
              "register with ('*' = any) [default: none].")
@with_appcontext
def create_api_key_command(email: str, name: str, scope: str, expires_days: int | None,
                           pools: str) -> None:
    """Create an API key and print it once, alone on the last line of stdout.

    KEY=$(scriptmesh api-keys create --email you@company.com --name ci | tail -1)
    """
    from orchestrator.services import accounts, api_keys

    owner = accounts.find_user_by_email(email)
    if owner is None:
        raise click.ClickException(f"No user with email {email!r}.")
    try:
        granted = [tag.strip() for tag in pools.split(",") if tag.strip()] or None
        key, raw = api_keys.create_api_key(owner, name, scope=scope, expires_days=expires_days,
                                           pools=granted)
    except ScriptMeshError as exc:
        raise _fail(exc) from None
    expiry = key.expires_at.isoformat() if key.expires_at else "never"
    click.echo(f"Created API key {key.id} ({key.scope}, expires {expiry}) for tenant "
               f"{key.tenant_id}. {api_keys.CREATED_WARNING}", err=True)
    click.echo(raw)
