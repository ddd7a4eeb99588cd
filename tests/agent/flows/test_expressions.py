"""The safe expression evaluator: operators, member access, literals, errors, traced names."""

from __future__ import annotations

import re

import pytest

from agent.flows.errors import ExpressionError
from agent.flows.expressions import evaluate

NAMES = {
    "status": 201,
    "body": {"user": {"name": "Alice", "tags": ["a", "b"]}, "items": [10, 20, 30], "n": None},
    "headers": {"content-type": "application/json; charset=utf-8"},
    "ok": True,
    "ratio": 0.5,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("status == 201", True),
        ("status != 201", False),
        ("status >= 200 && status < 300", True),
        ("status < 200 || status > 300", False),
        ("status > 200 and ok", True),
        ("not ok or status == 201", True),
        ("!ok", False),
        ("!(status == 500)", True),
        ("status in [200, 201, 204]", True),
        ("status not in [200, 204]", True),
        ("'b' in body.user.tags", True),
        ("body.user.tags contains 'a'", True),
        ("headers['content-type'] contains 'json'", True),
        ("body.user.name startsWith 'Al'", True),
        ("body.user.name endsWith 'ce'", True),
        ("body.user.name matches '^A[a-z]+$'", True),
        ("len(body.items) == 3", True),
        ("len(body.user.name) == 5", True),
        ("body.items[0] + body.items[-1] == 40", True),
        ("body.items[9] == nil", True),
        ("body.n == nil && body.missing == null", True),
        ("ratio * 4 == 2", True),
        ("'a' + 'b' == \"ab\"", True),
        ("[1, 2] == [1, 2]", True),
        ("-status < 0", True),
        ("true == 1", False),
        ("lower('ABC') == 'abc' && upper('x') == 'X'", True),
        ("int('42') + 1 == 43", True),
        ("'status' in keys(headers) == false", True),
        ("'it\\'s' == \"it's\"", True),
    ],
)
def test_operators(source: str, expected: bool) -> None:
    assert evaluate(source, NAMES) is expected


def test_literals_and_precedence() -> None:
    assert evaluate("1 + 2 * 3", {}) == 7
    assert evaluate("(1 + 2) * 3", {}) == 9
    assert evaluate("7 % 4", {}) == 3
    assert evaluate("[1, 'x', nil, true]", {}) == [1, "x", None, True]
    assert evaluate("1.5e1", {}) == 15.0
    assert evaluate("false || nil", {}) is None


def test_traces_the_names_it_used() -> None:
    used: dict = {}
    evaluate("status == 200 && len(body.items) > 1 || body.user.name == 'x'", NAMES, used)
    assert used == {"status": 201, "body.user.name": "Alice"}
    used = {}
    evaluate("headers['content-type'] contains 'xml'", NAMES, used)
    assert used == {"headers['content-type']": "application/json; charset=utf-8"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing == 1", "unknown name 'missing'"),
        ("body.n.x == 1", "cannot read 'x' of nil"),
        ("status < 'a'", "cannot compare number < string"),
        ("len(status)", "len() of a number"),
        ("status ==", "unexpected end of expression"),
        ("1 +* 2", "unexpected '*'"),
        ("status = 1", "unexpected character '='"),
        ("nope(1)", "unknown function 'nope'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("body.__class__", ""),
        ("1 / 0", "division by zero"),
        ("'x' matches '('", "invalid regular expression"),
        ("body.items['a']", "index must be an integer"),
        ("", "non-empty"),
    ],
)
def test_errors_are_expression_errors(source: str, message: str) -> None:
    if source == "body.__class__":  # attribute access never reaches Python objects
        assert evaluate(source, NAMES) is None
        return
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate(source, NAMES)


def test_error_messages_do_not_contain_values() -> None:
    names = {"token": "s3cr3t-value"}
    with pytest.raises(ExpressionError) as info:
        evaluate("token > 3", names)
    assert "s3cr3t" not in str(info.value)
