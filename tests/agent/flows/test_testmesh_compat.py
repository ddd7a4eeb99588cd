"""TestMesh semantics in the engine: layout, references, outputs, types, expr-lang, actions."""

from __future__ import annotations

import json
import sqlite3
from collections import ChainMap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.flows import load_flow
from agent.flows.errors import ExpressionError, FlowSchemaError
from agent.flows.expressions import evaluate
from agent.flows.interpolate import MISSING, interpolate
from agent.flows.outputs import extract_output
from tests.agent.flows.conftest import SECRET_MARKER


@pytest.mark.parametrize(("expression", "expected"), [
    ("status == 201 && status == '201' && '201' == status", True),
    ("rows >= '0' && rows < '10' && '3' > 2", True),
    ("'10' > '9'", False),  # two strings still compare as text, as in expr-lang
    ("status == '201x'", False),
    ("true == 1", False),
    ("missing ?? 'd'", "d"),
    ("nothing.deeper ?? 5", 5),
    ("status == 201 ? 'created' : 'other'", "created"),
    ("all(items, {.id > 0}) && any(ids, # == 2) && none(ids, # > 9) && one(ids, # == 1)", True),
    ("filter(ids, # >= 2) == [2, 3] && map(ids, # * 10) == [10, 20, 30] && count(ids, # > 1)"
     " == 2", True),
    ("split('a-b', '-') == ['a', 'b'] && abs(-2) == 2 && min(ids) == 1 && max(3, 8) == 8", True),
    ("upper(name) == 'AL' && lower('X') == 'x' && trim(' y ') == 'y'", True),
    ("name startsWith 'a' && name endsWith 'l' && name matches '^a.$' && name contains 'l'",
     True),
    ("2 in ids && not (5 in ids) && 5 not in ids && !false", True),
    ("{a: 1, 'b': ids[0]}.b == 1", True),
    ("${fetch.status} == 200 && ${fetch.body.id} == '7'", True),
])
def test_expr_lang_operators_and_builtins(expression: str, expected: Any) -> None:
    names = ChainMap({"status": 201, "rows": 3, "missing": None, "name": "al", "ids": [1, 2, 3],
                      "items": [{"id": 1}, {"id": 4}],
                      "fetch": {"status": 200, "body": {"id": 7}}})
    assert evaluate(expression, names) == expected


def test_unsupported_operators_are_load_errors_not_crashes() -> None:
    for expression in ("2 ** 3", "1..3", "a | b", "a?.b"):
        with pytest.raises(ExpressionError):
            evaluate(expression, {"a": 1, "b": 2})


def test_outputs_jsonpath_dot_path_own_id_and_never_failing() -> None:
    result = {"status": 200, "body": {"id": 5, "data": {"items": [{"id": 8}, {"id": 9}]}}}
    names = ChainMap({"reg": result}, result)
    assert extract_output("$.id", result, "reg", names) == (5, None)
    assert extract_output("$.data.items[0].id", result, "reg", names) == (8, None)
    assert extract_output("$.data.items[*].id", result, "reg", names) == ([8, 9], None)
    assert extract_output("$.status", result, "reg", names) == (200, None)  # whole-result fallback
    assert extract_output("reg.body.id", result, "reg", names) == (5, None)
    assert extract_output("body.data.items[1].id", result, "reg", names) == (9, None)
    assert extract_output("len(body.data.items)", result, "reg", names) == (2, None)
    value, note = extract_output("$.nope", result, "reg", names)
    assert value is None and "matched nothing" in note


def test_builtins_and_double_brace_references() -> None:
    values = {"HOST": "h", "n": 3}

    def lookup(name: str) -> Any:
        return values.get(name, MISSING)

    text = interpolate("{{HOST}}/${RANDOM_ID}/${TIMESTAMP}/${DATE}", lookup, {})
    host, uid, stamp, date = text.split("/")
    assert host == "h" and len(uid) == 36 and stamp.isdigit() and len(date) == 10
    assert interpolate("{{ n }}", lookup, {}) == 3
    assert interpolate("${UUID}", lambda k: {"UUID": "mine"}.get(k), {}) == "mine"


def test_testmesh_layouts_metadata_numbering_and_warnings() -> None:
    bare = load_flow({"name": "b", "suite": "s", "tags": ["x"], "collection": "c", "odd": 1,
                      "steps": [{"action": "log", "config": {"message": "m"}, "extra": 1}]})
    assert bare.metadata == {"suite": "s", "tags": ["x"], "collection": "c", "odd": 1}
    assert bare.steps[0].id == "main_0"
    assert bare.warnings == ("flow: unknown key 'odd' kept as metadata",
                             "flow.steps[0] (step 'main_0'): unknown key 'extra' ignored")
    split = load_flow({"flow": {"name": "f", "suite": "e"},
                       "steps": [{"id": "s", "action": "delay", "config": {"duration": "1ms"}}]})
    assert [s.id for s in split.steps] == ["s"] and split.metadata == {"suite": "e"}
    with pytest.raises(FlowSchemaError) as info:
        load_flow({"name": "t", "steps": [{"action": "log", "config": {"mesage": "m"}}]})
    assert "unknown config key 'mesage' (allowed: data, level, message)" in str(info.value)


def test_seed_style_flow_in_the_engine_keeps_raw_data_local(run_flow, app_server) -> None:
    result = run_flow({"name": "seedish", "tags": ["smoke"], "steps": [
        {"id": "login", "action": "http_request",
         "config": {"method": "POST", "url": f"{app_server.url}/login", "body": {"password": "pw"}},
         "assert": ["login.status == 200", "response.status == 200",
                    "response.body.user.id == 7"],
         "output": {"token": "login.body.token",
                                                        "uid": "$.user.id"}},
        {"id": "grab", "action": "http_request", "config": {"url": f"{app_server.url}/secret"}},
        {"id": "branch", "action": "condition",
         "config": {"condition": "${login.status} == 200",
                    "then": [{"action": "log", "config": {"message": "u=${login.uid}"}}]}},
        {"id": "check", "action": "assert", "config": {
            "data": {"status": "${login.status}", "id": "${grab.body.id}"},
            "assertions": ["status == '200'", "id == 42", "uid == 7"]}},
        {"id": "each", "action": "for_each", "config": {"items": [1, 2], "item_name": "n"}},
    ]})
    assert result.ok, result.error
    assert result.outputs == {"token": "tok-123", "uid": 7}
    assert run_flow.final("branch.branch_then_0")["status"] == "passed"
    assert ("info", "u=7", "branch.branch_then_0") in run_flow.logs
    assert SECRET_MARKER not in json.dumps(run_flow.events)


def test_database_query_connection_and_native_placeholders_on_sqlite(run_flow,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE u (id INTEGER, email TEXT); INSERT INTO u VALUES "
                           "(1, 'a@x'), (2, 'b@x');")
    result = run_flow({"name": "db", "steps": [
        {"id": "q", "action": "database_query", "config": {
            "connection": f"sqlite:///{path}",
            "query": "SELECT id FROM u WHERE email = $2 OR id = $1 ORDER BY id",
            "params": [1, "b@x"]}, "output": {"first": "q.first_row.id"}},
        {"id": "ins", "action": "database_query", "config": {
            "connection": f"sqlite:///{path}", "query": "INSERT INTO u VALUES ($1, $2)",
            "params": [3, "c@x"]}, "assert": ["rows_affected == 1"]},
        {"id": "check", "action": "assert", "config": {
            "data": {"rows": "${q.row_count}"}, "assertions": ["rows == '2'", "q.first == 1"]}},
    ]})
    assert result.ok, result.error


def test_database_query_dollar_placeholders_on_postgresql(run_flow, pg_dsn: str,
                                                          pg_table: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {pg_table} (id INT, email TEXT)")
        conn.execute(f"INSERT INTO {pg_table} VALUES (1, 'a@x'), (2, '100%@x')")
    result = run_flow({"name": "pg", "steps": [
        {"id": "q", "action": "database_query", "config": {
            "connection": pg_dsn,
            "query": f"SELECT id FROM {pg_table} WHERE email = $1 OR email LIKE '100%'",
            "params": ["a@x"]}, "assert": ["row_count == 2", "first_row.id == 1"]},
    ]})
    assert result.ok, result.error


def test_transform_input_transforms_log_data_and_collecting_for_each(run_flow) -> None:
    result = run_flow({"name": "t", "env": {"payload": {"items": [{"id": 3}], "n": "x"}},
                       "steps": [
        {"id": "shape", "action": "transform", "config": {
            "input": "${payload}", "transforms": {"first": "$.items[0].id", "label": "fixed",
                                                  "none": "$.nope"}},
         "output": {"first": "first"}},
        {"id": "loop", "action": "for_each", "config": {"items": ["a", "b"]},
         "assert": ["items_processed == 2", "results[1].item == 'b'"]},
        {"id": "say", "action": "log", "config": {"message": "m", "level": "warn",
                                                  "data": {"first": "${shape.first}"}}},
        {"id": "check", "action": "assert", "config": {
            "expression": "{{first}} == 3 && shape.label == 'fixed' && shape.none == nil"}},
    ]})
    assert result.ok, result.error
    assert ("warning", 'm {"first": 3}', "say") in run_flow.logs
