"""``database_query`` and ``db_poll``: SQL on PostgreSQL (psycopg 3) or SQLite; rows stay local.

The connection is ``dsn`` or TestMesh's ``connection``: a ``postgresql://`` URL (or
libpq string), or ``sqlite:///relative.db`` / ``sqlite:////absolute.db``. Placeholders
may be ``%s`` / ``%(name)s`` (PostgreSQL), ``?`` (SQLite) or PostgreSQL's native
``$1, $2`` on either database.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
import uuid
from decimal import Decimal
from typing import Any

try:  # an optional driver: pip install 'scriptmesh[agent-postgres]'
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - exercised on light agent installs
    psycopg = None

from agent.flows import targets
from agent.flows.context import ActionContext, ActionSpec
from agent.flows.durations import parse_duration
from agent.flows.errors import ExpressionError, StepFailed
from agent.flows.expressions import evaluate

DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_POLL_TIMEOUT = 30.0

CONNECTION = {"type": "string", "minLength": 1}
DURATION = {"type": ["number", "string"]}
CONFIG_SCHEMA = {
    "required": ["query"],
    "oneOf": [{"required": ["dsn"]}, {"required": ["connection"]}],
    "properties": {
        "dsn": CONNECTION,
        "connection": CONNECTION,
        "query": {"type": "string", "minLength": 1},
        "params": {"type": ["array", "object", "string"]},
    },
}
POLL_SCHEMA = {
    "required": ["query", "condition"],
    "oneOf": CONFIG_SCHEMA["oneOf"],
    "properties": {**CONFIG_SCHEMA["properties"], "condition": {"type": "string"},
                   "interval": DURATION, "timeout": DURATION},
}
RESULT_KEYS = ("rows", "row_count", "first_row", "rows_affected", "duration_ms")
SQLITE_PREFIX = "sqlite://"
#: ``$1`` outside single-quoted literals (``$$`` dollar quotes are left alone).
_NATIVE_RE = re.compile(r"'(?:[^']|'')*'|(?<!\$)\$(\d+)\b")


def plain_value(value: Any) -> Any:
    """Make a column value JSON- and expression-friendly (numbers, strings, lists, maps)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    return value


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = dsn.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else dsn


def connection_of(config: dict[str, Any]) -> str:
    """The step's connection string (``dsn`` or TestMesh's ``connection``)."""
    return str(config.get("dsn") or config.get("connection") or "")


def native_placeholders(query: str, params: Any, marker: str) -> tuple[str, Any]:
    """Rewrite ``$1, $2`` to ``marker`` placeholders, reordering list params to match.

    ``marker`` is ``%s`` (psycopg; literal ``%`` is then doubled) or ``?`` (SQLite).
    Queries without ``$N`` are returned unchanged.
    """
    if not isinstance(params, list) or not _NATIVE_RE.search(query):
        return query, params
    ordered: list[Any] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:  # a quoted literal: keep it (escaped for psycopg)
            return match.group(0).replace("%", "%%") if marker == "%s" else match.group(0)
        number = int(match.group(1))
        if not 1 <= number <= len(params):
            raise StepFailed(f"database_query: ${number} has no parameter "
                             f"({len(params)} given)")
        ordered.append(params[number - 1])
        return marker
    pieces, last = [], 0
    for match in _NATIVE_RE.finditer(query):
        outside = query[last:match.start()]
        pieces.append(outside.replace("%", "%%") if marker == "%s" else outside)
        pieces.append(replace(match))
        last = match.end()
    tail = query[last:]
    pieces.append(tail.replace("%", "%%") if marker == "%s" else tail)
    return "".join(pieces), ordered


def sqlite_path(dsn: str) -> str | None:
    """The file of a ``sqlite:///path`` URL (``:memory:`` allowed), None for other URLs."""
    if not dsn.startswith(SQLITE_PREFIX):
        return None
    return dsn[len(SQLITE_PREFIX):].removeprefix("/") or ":memory:"


def connect(dsn: str, ctx: ActionContext) -> Any:
    """Open an autocommit connection whose statements cannot outlive the step."""
    path = sqlite_path(dsn)
    if path is not None:
        return SQLiteConnection(path, ctx)
    if psycopg is None:
        raise StepFailed("database steps need psycopg on the agent: "
                         "pip install 'scriptmesh[agent-postgres]'")
    try:
        host = conninfo_to_dict(normalize_dsn(dsn)).get("host")
    except psycopg.Error as exc:
        raise StepFailed(f"database dsn is not valid: {_first_line(exc)}") from None
    targets.check_dsn_host(str(host) if host else None, "database")
    left = ctx.remaining()
    connect_timeout = DEFAULT_CONNECT_TIMEOUT if left is None else max(1, min(10, int(left)))
    try:
        conn = psycopg.connect(normalize_dsn(dsn), autocommit=True, connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise StepFailed(f"database connection failed: {_first_line(exc)}") from None
    if left is not None:
        conn.execute(f"SET statement_timeout = {max(int(left * 1000), 1)}")
    return conn


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SQLiteConnection:
    """The SQLite side of :func:`run_query`: autocommit, rows as dicts, a busy timeout."""

    def __init__(self, path: str, ctx: ActionContext) -> None:
        left = ctx.remaining()
        try:
            self.conn = sqlite3.connect(path, timeout=10.0 if left is None else max(left, 0.05),
                                        isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StepFailed(f"database connection failed: {_first_line(exc)}") from None
        self.conn.row_factory = sqlite3.Row

    def __enter__(self) -> SQLiteConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def run(self, query: str, params: Any) -> dict[str, Any]:
        query, params = native_placeholders(query, params, "?")
        if isinstance(params, list):
            query = query.replace("%s", "?")
        try:
            cursor = self.conn.execute(query, params or ())
            rows = [plain_value(dict(row)) for row in cursor.fetchall()] if cursor.description \
                else []
            affected = max(cursor.rowcount, 0)
        except (sqlite3.Error, ValueError) as exc:
            raise StepFailed(f"database error: {_first_line(exc)}") from None
        return _result(rows, affected)


def _result(rows: list[Any], affected: int) -> dict[str, Any]:
    return {"rows": rows, "row_count": len(rows), "first_row": rows[0] if rows else None,
            "rows_affected": affected}


def run_query(conn: Any, query: str, params: Any) -> dict[str, Any]:
    """Execute one statement; return ``rows, row_count, first_row, rows_affected``."""
    if isinstance(conn, SQLiteConnection):
        return conn.run(query, params)
    query, params = native_placeholders(query, params, "%s")
    try:
        with conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params or None)
            rows = [plain_value(row) for row in cursor.fetchall()] if cursor.description else []
            affected = max(cursor.rowcount, 0)
    except psycopg.Error as exc:
        code = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        raise StepFailed(f"database error{code}: {_first_line(exc)}") from None
    return _result(rows, affected)


def database_query(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run ``query`` with ``params`` (a list for ``$1``/``%s``/``?``, a map for ``%(name)s``)."""
    started = time.monotonic()
    with connect(connection_of(config), ctx) as conn:
        result = run_query(conn, str(config["query"]), config.get("params"))
    return {**result, "duration_ms": int((time.monotonic() - started) * 1000)}


def db_poll(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Re-run ``query`` every ``interval`` until ``condition`` holds or ``timeout`` passes.

    The condition sees ``rows, row_count, first_row, rows_affected`` and the flow's names;
    while it cannot be evaluated yet (say ``first_row`` is nil) polling goes on.
    """
    interval = parse_duration(config.get("interval", DEFAULT_POLL_INTERVAL), "config.interval")
    timeout = parse_duration(config.get("timeout", DEFAULT_POLL_TIMEOUT), "config.timeout")
    condition = str(config["condition"])
    started, attempts, last_error = time.monotonic(), 0, ""
    with connect(connection_of(config), ctx) as conn:
        while True:
            attempts += 1
            result = run_query(conn, str(config["query"]), config.get("params"))
            try:
                if evaluate(condition, ctx.names(result)):
                    elapsed = int((time.monotonic() - started) * 1000)
                    return {**result, "attempts": attempts, "duration_ms": elapsed}
            except ExpressionError as exc:
                last_error = f" (last error: {exc})"
            if time.monotonic() - started + interval > timeout:
                raise StepFailed(
                    f"db_poll: condition {condition!r} not met within {timeout:g}s "
                    f"after {attempts} attempts{last_error}"
                )
            ctx.sleep(interval)


ACTIONS = {
    "database_query": ActionSpec(
        database_query, config_schema=CONFIG_SCHEMA, result_keys=RESULT_KEYS,
        example={"connection": "${DB_DSN}", "query": "SELECT id FROM users WHERE email = $1",
                 "params": ["alice@example.com"]}),
    "db_poll": ActionSpec(
        db_poll, raw_keys=frozenset({"condition"}), config_schema=POLL_SCHEMA,
        expression_keys=("condition",), result_keys=(*RESULT_KEYS, "attempts"),
        example={"connection": "${DB_DSN}", "query": "SELECT status FROM jobs WHERE id = $1",
                 "params": ["${job_id}"], "condition": "first_row.status == 'done'",
                 "interval": "1s", "timeout": "30s"}),
}
