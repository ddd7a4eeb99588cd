"""``scriptmesh keys rotate`` and ``keys status``: encryption keys of stored secrets."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


def register(group: click.Group) -> None:
    """Add this module's commands to the ``scriptmesh`` group."""
    group.add_command(keys)


@click.group("keys")
def keys() -> None:
    """Encryption keys of stored secrets (ENCRYPTION_KEY)."""


@keys.command("rotate")
@with_appcontext
def rotate_command() -> None:
    """Re-encrypt every stored secret under the first key of ENCRYPTION_KEY.

    Put the new key first (ENCRYPTION_KEY=new:<key>,old:<key>), run this, then
    remove the old key once `scriptmesh keys status` shows nothing under it.
    """
    from orchestrator.services.crypto import SecretUnreadable
    from orchestrator.services.key_rotation import rotate_all_secrets

    try:
        result = rotate_all_secrets()
    except SecretUnreadable as exc:
        raise click.ClickException(f"{exc}; keep every old key in ENCRYPTION_KEY until "
                                   "rotation has finished") from None
    click.echo(f"re-encrypted {result['rotated']} secret(s) under key '{result['key_id']}'; "
               f"{result['current']} already used it")


@keys.command("status")
@with_appcontext
def status_command() -> None:
    """Print how many stored secrets each key id encrypts."""
    from orchestrator.services.crypto import current_key_id
    from orchestrator.services.key_rotation import secrets_by_key

    click.echo(f"current key: {current_key_id()}")
    for key_id, count in sorted(secrets_by_key().items()):
        click.echo(f"{key_id}: {count} secret(s)")
