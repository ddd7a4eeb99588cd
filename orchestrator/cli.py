"""The hub's admin commands (``dev``, ``db``, ``users``, ``api-keys``, ``worker`` ...): imported
only when one of them runs, by the ``scriptmesh`` group in ``scriptmesh_cli.main``.

``scriptmesh db`` comes from Flask-Migrate; the rest come from
``orchestrator.commands``, one module per area. Each builds the app (or its
processes do) only when it runs.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup, ScriptInfo

from orchestrator import create_app
from orchestrator.config import DEFAULT_DATA_DIR, ConfigError

#: Modules under orchestrator.commands; each exposes ``register(group)``.
COMMAND_MODULES = ("accounts", "processes", "keys")
#: Admin commands that may run before any database exists (they create it).
CREATES_DATABASE = frozenset({"dev", "db"})


def _make_app(*_args: object) -> object:
    check_database(click.get_current_context().find_root().invoked_subcommand or "")
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def script_info() -> ScriptInfo:
    """What Flask's ``with_appcontext`` needs to build the app for an admin command."""
    return ScriptInfo(create_app=_make_app, set_debug_flag=False, load_dotenv_defaults=False)


@functools.cache
def admin_commands() -> dict[str, click.Command]:
    """Every admin command by name (``keys`` holds ``rotate`` and ``status``).

    Built once: click's decorators consume the options they attach to a function.
    """
    from flask_migrate.cli import db

    group = AppGroup("admin")
    for name in COMMAND_MODULES:
        importlib.import_module(f"orchestrator.commands.{name}").register(group)
    group.add_command(db)
    for name in ("worker", "scheduler"):  # they build their own app: check first
        group.commands[name].callback = _checked(name, group.commands[name].callback)
    return dict(group.commands)


def _checked(name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        check_database(name)
        return callback(*args, **kwargs)
    return run


def check_database(command: str) -> None:
    """Refuse (one line) an admin command that needs a database the data dir lacks.

    Only the default SQLite database can be checked without connecting; with
    ``DATABASE_URL`` set, the command runs and reports its own connection errors.
    """
    if command in CREATES_DATABASE or os.environ.get("DATABASE_URL"):
        return
    data_dir = Path(os.environ.get("SCRIPTMESH_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    if not (data_dir / "scriptmesh.db").exists():
        raise click.ClickException(
            f"No ScriptMesh database in data dir {data_dir} (the default is ./instance "
            "under the current directory): run from the project directory, set "
            "SCRIPTMESH_DATA_DIR or DATABASE_URL, or create it with `scriptmesh db upgrade`.")


from scriptmesh_cli.main import main  # noqa: E402 - the one ``scriptmesh`` group

if __name__ == "__main__":
    main()
