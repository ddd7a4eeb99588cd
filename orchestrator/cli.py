"""``scriptmesh``: the operator's command line (a Flask CLI group over ``create_app``).

``scriptmesh db upgrade`` comes from Flask-Migrate; the rest come from
``orchestrator.commands``, one module per area.
"""

from __future__ import annotations

import importlib

import click
from flask.cli import FlaskGroup

from orchestrator import create_app
from orchestrator.config import ConfigError

#: Modules under orchestrator.commands; each exposes ``register(group)``.
COMMAND_MODULES = ("accounts", "processes", "keys")


def _make_app(*_args: object) -> object:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_make_app, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """ScriptMesh hub administration."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"orchestrator.commands.{_name}").register(main)


if __name__ == "__main__":
    main()
