"""How the CLI prints: the API's JSON for ``--json``, else rich tables (colours on a TTY only)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

#: rich's ``[style]...[/style]`` markup, dropped by the plain fallback.
MARKUP = re.compile(r"\[/?[a-z ]*\]")

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the API's JSON answer instead of a table.")


def has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def console(stderr: bool = False) -> Any:
    """A rich console; rich itself turns colours off when the stream is not a TTY."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=not stream.isatty())


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]],
                title: str | None = None) -> None:
    """A table: rich's when installed (``scriptmesh[cli]``), else plain aligned columns."""
    try:
        from rich import box
        from rich.table import Table
    except ImportError:
        print_plain_table(columns, [["" if c is None else str(c) for c in r] for r in rows])
        return

    table = Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left",
                  show_edge=False, pad_edge=False)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_plain_table(columns: Sequence[str], rows: list[list[str]]) -> None:
    rows = [[MARKUP.sub("", cell) for cell in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name: value`` lines, names aligned."""
    pairs = [(k, v) for k, v in pairs if v not in (None, "", [], {})]
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        click.echo(f"{key.ljust(width)}  {value}")


STATUS_STYLES = {"success": "green", "failed": "red", "timeout": "red", "cancelled": "yellow",
                 "expired": "yellow", "running": "cyan", "pending": "dim", "online": "green",
                 "offline": "red", "draining": "yellow"}


def styled(status: str | None) -> str:
    """A status with rich markup (dropped when not on a TTY)."""
    style = STATUS_STYLES.get(status or "")
    return f"[{style}]{status}[/{style}]" if style else str(status)


def short_time(value: str | None) -> str:
    """``2026-03-10T14:32:11.123Z`` -> ``2026-03-10 14:32:11``."""
    return value[:19].replace("T", " ") if value else ""
