"""``${...}`` interpolation: variables, step results with indexing, the agent's environment."""

from __future__ import annotations

import pytest

from agent.flows.errors import InterpolationError
from agent.flows.interpolate import MISSING, interpolate

VALUES = {"n": 3, "items": [1, {"id": "x"}], "login": {"body": {"token": "t", "ids": [5, 6]}}}


def lookup(name: str):
    return VALUES.get(name, MISSING)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${n}", 3),
        ("${items}", [1, {"id": "x"}]),
        ("${login.body}", {"token": "t", "ids": [5, 6]}),
        ("${login.body.ids[1]}", 6),
        ("${items[1].id}", "x"),
        ("${items[1]['id']}", "x"),
        ("${ login.body.token }", "t"),
        ("n=${n}", "n=3"),
        ("ids ${login.body.ids} / ${items[1]}", 'ids [5, 6] / {"id": "x"}'),
        ("Bearer ${login.body.token}", "Bearer t"),
        ("$${n} stays", "${n} stays"),
        ("${env.FLOW_TEST_VAR}/x", "from-env/x"),
        ({"a": ["${n}", {"b": "${items[0]}"}], "c": 1}, {"a": [3, {"b": 1}], "c": 1}),
    ],
)
def test_interpolation_keeps_types_when_whole(template, expected) -> None:
    assert interpolate(template, lookup, {"FLOW_TEST_VAR": "from-env"}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${nope}", "unknown reference ${nope}: no variable, output or step named 'nope'"),
        ("x ${login.body.missing}", "unknown reference ${login.body.missing}: "
                                    "'login.body.missing' not found"),
        ("${items[5]}", "unknown reference ${items[5]}: 'items[5]' not found"),
        ("${env.NOT_SET_ANYWHERE}", "environment variable NOT_SET_ANYWHERE is not set"),
        ("${a b}", "invalid reference ${a b}"),
    ],
)
def test_unknown_references_name_themselves(template: str, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(template, lookup, {})
    assert message in str(info.value)


def test_flow_env_variables_and_step_results_in_a_run(run_flow, monkeypatch) -> None:
    monkeypatch.setenv("FLOW_SECRET_DB", "postgresql://secret@db/x")
    result = run_flow("""
flow:
  name: interp
  env:
    limit: 5
    dsn: "${env.FLOW_SECRET_DB}"
    label: "limit is ${limit}"
  steps:
    - id: make
      action: transform
      config:
        value: {list: [1, 2, 3], limit: "${limit}", label: "${label}", who: "${who}"}
    - id: use
      action: transform
      config:
        value:
          list: "${make.value.list}"
          second: "${make.value.list[1]}"
          text: "n=${make.value.limit}"
          dsn_prefix: "${dsn}"
      assert:
        - value.list == [1, 2, 3]
        - value.second == 2
        - value.text == "n=5"
        - make.value.label == "limit is 5"
        - make.value.who == "trigger"
        - value.dsn_prefix startsWith "postgresql://"
""", {"who": "trigger"})
    assert result.ok, run_flow.events


def test_unknown_reference_fails_the_step_naming_it(run_flow) -> None:
    result = run_flow("""
flow:
  name: interp
  steps:
    - id: broken
      action: log
      config: {message: "token ${login.body.token}"}
      retry: {max_attempts: 3, delay: 1}
""")
    event = run_flow.final("broken")
    assert event["type"] == "step_failed"
    assert event["attempts"] == 1  # a reference that names nothing will not appear by retrying
    assert "unknown reference ${login.body.token}" in event["error"]
    assert "step broken: unknown reference ${login.body.token}" in result.error
