"""Redis and PostgreSQL actions against the real services."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import redis

TTL_KEY_TTL = 0.3


def test_redis_set_get_exists_del_with_ttl(run_flow, redis_url) -> None:
    key = f"flow:{uuid.uuid4().hex}"
    result = run_flow({"flow": {"name": "r", "env": {"url": redis_url, "key": key}, "steps": [
        {"id": "put", "action": "redis.set",
         "config": {"url": "${url}", "key": "${key}", "value": {"n": 1, "tags": ["a"]}},
         "assert": ["ok"]},
        {"id": "read", "action": "redis.get",
         "config": {"url": "${url}", "key": "${key}", "parse_json": True},
         "assert": ["exists", "value.n == 1", "value.tags[0] == 'a'"],
         "output": {"n": "value.n"}},
        {"id": "temp", "action": "redis.set",
         "config": {"url": "${url}", "key": "${key}:tmp", "value": "x", "ttl": TTL_KEY_TTL}},
        {"id": "both", "action": "redis.exists",
         "config": {"url": "${url}", "keys": ["${key}", "${key}:tmp", "${key}:none"]},
         "assert": ["count == 2", "exists == false"]},
        {"id": "expire", "action": "delay", "config": {"duration": TTL_KEY_TTL + 0.1}},
        {"id": "gone", "action": "redis.exists", "config": {"url": "${url}", "key": "${key}:tmp"},
         "assert": ["!exists"]},
        {"id": "drop", "action": "redis.del", "config": {"url": "${url}", "key": "${key}"},
         "assert": ["deleted == 1"]},
        {"id": "empty", "action": "redis.get", "config": {"url": "${url}", "key": "${key}"},
         "assert": ["value == nil", "exists == false"]},
    ]}})
    assert result.ok, run_flow.events
    assert result.outputs == {"n": 1}


def test_redis_url_with_password_and_db(run_flow, redis_url) -> None:
    admin = redis.Redis.from_url(redis_url)
    user, password = f"flow{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                      commands=["+@all"])
    scheme, _, rest = redis_url.partition("://")
    base = f"{scheme}://{user}:{password}@{rest}"
    separator = "&" if "?" in base else "?"
    db_url = f"{base}{separator}db=3" if scheme == "unix" else f"{base.rsplit('/', 1)[0]}/3"
    admin_db3_url = (f"{redis_url}{'&' if '?' in redis_url else '?'}db=3" if scheme == "unix"
                     else f"{redis_url.rsplit('/', 1)[0]}/3")
    admin_db3 = redis.Redis.from_url(admin_db3_url)  # a URL's own db beats a db= argument
    key = f"flow:{uuid.uuid4().hex}"
    try:
        result = run_flow({"flow": {"name": "r", "steps": [
            {"id": "put", "action": "redis.set",
             "config": {"url": db_url, "key": key, "value": "in-db-3"}},
            {"id": "read", "action": "redis.get", "config": {"url": db_url, "key": key},
             "assert": ["value == 'in-db-3'"]},
        ]}})
        assert result.ok, run_flow.events
        assert admin.get(key) is None  # db 0 does not have it
        assert admin_db3.get(key) == b"in-db-3"

        run_flow({"flow": {"name": "r", "steps": [
            {"id": "denied", "action": "redis.get",
             "config": {"url": db_url.replace(password, "wrong"), "key": key}}]}})
        error = run_flow.final("denied")["error"]
        assert error.startswith("redis error: AuthenticationError")
        assert "wrong" not in error
    finally:
        admin_db3.delete(key)
        admin.acl_deluser(user)


def test_database_query_rows_params_and_affected(run_flow, pg_dsn, pg_table) -> None:
    result = run_flow({"flow": {"name": "db", "env": {"dsn": pg_dsn, "t": pg_table},
        "setup": [
            {"id": "create", "action": "database_query",
             "config": {"dsn": "${dsn}",
                        "query": f"CREATE TABLE {pg_table} (id serial PRIMARY KEY, name text,"
                                 " score numeric, created date DEFAULT '2024-01-02')"}},
        ],
        "steps": [
            {"id": "insert", "action": "database_query",
             "config": {"dsn": "${dsn}", "params": ["ann", 1.5, "bob", 2],
                        "query": f"INSERT INTO {pg_table} (name, score) VALUES (%s, %s), (%s, %s)"},
             "assert": ["rows_affected == 2", "row_count == 0"]},
            {"id": "select", "action": "database_query",
             "config": {"dsn": "${dsn}", "params": {"min": 1},
                        "query": f"SELECT id, name, score, created FROM {pg_table} "
                                 "WHERE score >= %(min)s ORDER BY id"},
             "assert": ["row_count == 2", "first_row.name == 'ann'", "rows[1].score == 2",
                        "first_row.score == 1.5", "first_row.created == '2024-01-02'"],
             "output": {"names_count": "len(rows)", "second": "rows[1].name"}},
            {"id": "bad_sql", "action": "database_query",
             "config": {"dsn": "${dsn}", "query": "SELECT * FROM no_such_table_here"},
             "on_error": "continue"},
        ],
        "teardown": [
            {"id": "drop", "action": "database_query",
             "config": {"dsn": "${dsn}", "query": f"DROP TABLE {pg_table}"}},
        ]}})
    assert result.ok, run_flow.events
    assert result.outputs == {"names_count": 2, "second": "bob"}
    assert run_flow.final("bad_sql")["error"].startswith("database error [42P01]:")
    with psycopg.connect(pg_dsn) as conn:  # the teardown really dropped it
        assert conn.execute("SELECT to_regclass(%s)", [pg_table]).fetchone()[0] is None


def test_database_connection_failure_is_a_step_error(run_flow) -> None:
    run_flow({"flow": {"name": "db", "steps": [
        {"id": "nowhere", "action": "database_query",
         "config": {"dsn": "postgresql://u:hunter2@127.0.0.1:1/x", "query": "SELECT 1"}}]}})
    error = run_flow.final("nowhere")["error"]
    assert error.startswith("database connection failed:") and "hunter2" not in error


def test_db_poll_waits_for_a_row(run_flow, pg_dsn, pg_table) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {pg_table} (id int, state text)")

    def insert_later() -> None:
        time.sleep(0.25)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {pg_table} VALUES (1, 'done')")

    threading.Thread(target=insert_later).start()
    result = run_flow({"flow": {"name": "poll", "steps": [
        {"id": "poll", "action": "db_poll",
         "config": {"dsn": pg_dsn, "query": f"SELECT state FROM {pg_table} WHERE id = %s",
                    "params": [1], "condition": "first_row.state == 'done'",
                    "interval": 0.05, "timeout": 3},
         "assert": ["attempts > 1", "row_count == 1"]},
        {"id": "never", "action": "db_poll",
         "config": {"dsn": pg_dsn, "query": f"SELECT state FROM {pg_table} WHERE id = 2",
                    "condition": "row_count > 0", "interval": 0.05, "timeout": 0.2}},
    ]}})
    assert run_flow.final("poll")["status"] == "passed", run_flow.events
    assert run_flow.final("never")["error"].startswith(
        "db_poll: condition 'row_count > 0' not met within 0.2s")
    assert not result.ok
