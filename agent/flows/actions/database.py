"""``database_query`` and ``db_poll``: SQL against PostgreSQL (psycopg 3); rows stay local."""

from __future__ import annotations

import datetime as dt
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

CONFIG_SCHEMA = {
    "required": ["dsn", "query"],
    "properties": {
        "dsn": {"type": "string", "minLength": 1},
        "query": {"type": "string", "minLength": 1},
        "params": {"type": ["array", "object", "string"]},
    },
}
POLL_SCHEMA = {
    "required": ["dsn", "query", "condition"],
    "properties": {**CONFIG_SCHEMA["properties"], "condition": {"type": "string"}},
}


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


def connect(dsn: str, ctx: ActionContext) -> psycopg.Connection:
    """Open an autocommit connection whose statements cannot outlive the step."""
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


def run_query(conn: psycopg.Connection, query: str, params: Any) -> dict[str, Any]:
    """Execute one statement; return ``rows, row_count, first_row, rows_affected``."""
    try:
        with conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params or None)
            rows = [plain_value(row) for row in cursor.fetchall()] if cursor.description else []
            affected = max(cursor.rowcount, 0)
    except psycopg.Error as exc:
        code = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        raise StepFailed(f"database error{code}: {_first_line(exc)}") from None
    return {
        "rows": rows,
        "row_count": len(rows),
        "first_row": rows[0] if rows else None,
        "rows_affected": affected,
    }


def database_query(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run ``query`` with ``params`` (a list for ``%s``, a map for ``%(name)s``)."""
    started = time.monotonic()
    with connect(str(config["dsn"]), ctx) as conn:
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
    with connect(str(config["dsn"]), ctx) as conn:
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
    "database_query": ActionSpec(database_query, config_schema=CONFIG_SCHEMA),
    "db_poll": ActionSpec(
        db_poll, raw_keys=frozenset({"condition"}), config_schema=POLL_SCHEMA,
        expression_keys=("condition",),
    ),
}
