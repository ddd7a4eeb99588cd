"""Flow validation: every error names the step (id and position) and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.flows import FlowError, load_flow_file
from agent.flows.errors import FlowSchemaError
from agent.flows.schema import parse_flow_text


def errors_of(text: str) -> list[str]:
    with pytest.raises(FlowSchemaError) as info:
        parse_flow_text(text)
    return info.value.errors


def test_valid_flow_loads_with_defaults() -> None:
    flow = parse_flow_text("""
flow:
  name: ok
  timeout: 2s
  env: {base: "http://x"}
  steps:
    - id: get
      action: http_request
      config: {url: "${base}/a"}
      retry: {max_attempts: 3, delay: 250ms, backoff: exponential}
      timeout: 1.5
""")
    step = flow.steps[0]
    assert (flow.name, flow.timeout, flow.env) == ("ok", 2.0, {"base": "http://x"})
    retry = step.retry
    assert (retry.max_attempts, retry.delay, retry.backoff) == (3, 0.25, "exponential")
    assert [step.retry.delay_before(n) for n in (2, 3, 4)] == [0.25, 0.5, 1.0]
    assert (step.timeout, step.on_error, step.report_values) == (1.5, "fail", False)


def test_bad_field_names_step_and_field() -> None:
    [error] = errors_of("""
flow:
  name: f
  steps:
    - id: first
      action: delay
      config: {duration: 1}
    - id: login
      action: http_request
      config: {url: "http://x"}
      retry: {max_attempts: 2, backoff: linear}
""")
    assert error.startswith("step 'login' (flow.steps[1]): retry.backoff: 'linear' is not one of")


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("{id: s1, action: teleport}",
         "step 's1' (flow.steps[0]): action: 'teleport' is not one of"),
        ("{id: s1, action: http_request, config: {method: GET}}",
         "step 's1' (flow.steps[0]): config: 'url' is a required property"),
        ("{id: s1, action: http_request}", "step 's1' (flow.steps[0]): 'config' is a required"),
        ("{action: teleport}", "step 'main_0' (flow.steps[0]): action: 'teleport' is not one"),
        ("{id: 'bad id', action: delay, config: {duration: 1}}",
         "step 'bad id' (flow.steps[0]): id:"),
        ("{id: s1, action: delay, config: {duraton: 1}}",
         "step 's1' (flow.steps[0]): config: unknown config key 'duraton' (allowed: duration)"),
        ("{id: s1, action: http_request, config: {url: x, header: {}}}",
         "step 's1' (flow.steps[0]): config: unknown config key 'header' (allowed: auth, body, "
         "follow_redirects, headers, json, method, query, timeout, url, verify_tls)"),
        ("{id: s1, action: delay, config: {duration: 1}, timeout: soon}",
         "step 's1' (flow.steps[0]): timeout: 'soon' does not match"),
        ("{id: s1, action: delay, config: {duration: 1}, on_error: ignore}",
         "step 's1' (flow.steps[0]): on_error: 'ignore' is not one of"),
        ("{id: s1, action: wait_for, config: {type: tcp, host: x}}",
         "step 's1' (flow.steps[0]): config: 'port' is a required property"),
        ("{id: s1, action: assert, config: {expressions: ['status =']}}",
         "step 's1' (flow.steps[0]): config.expressions[0]: unexpected character '='"),
        ("{id: s1, action: delay, config: {duration: 1}, assert: ['a &&']}",
         "step 's1' (flow.steps[0]): assert[0]: unexpected end of expression"),
        ("{id: s1, action: delay, config: {duration: 1}, when: 'x ==='}",
         "step 's1' (flow.steps[0]): when: unexpected"),
    ],
)
def test_step_errors(step: str, expected: str) -> None:
    errors = errors_of(f"flow: {{name: f, steps: [{step}]}}")
    assert any(e.startswith(expected) for e in errors), errors


def test_nested_step_errors_name_the_nested_step() -> None:
    errors = errors_of("""
flow:
  name: f
  steps:
    - id: loop
      action: for_each
      config:
        items: [1, 2]
        steps:
          - id: inner
            action: redis.set
            config: {url: "redis://x", key: k}
    - id: par
      action: parallel
      config:
        branches:
          - {id: b1, action: delay}
          - [{id: b2, action: delay, config: {duration: 1}}, {id: b3, action: log, config: {}}]
""")
    assert ("step 'inner' (flow.steps[0].config.steps[0]): config: 'value' is a required "
            "property") in errors
    assert "step 'b1' (flow.steps[1].config.branches[0]): 'config' is a required property" in errors
    assert ("step 'b3' (flow.steps[1].config.branches[1][1]): config: 'message' is a required "
            "property") in errors


def test_duplicate_ids_are_refused_across_sections_and_nesting() -> None:
    errors = errors_of("""
flow:
  name: f
  setup: [{id: a, action: delay, config: {duration: 0}}]
  steps:
    - id: c
      action: condition
      config: {condition: "true", then: [{id: a, action: delay, config: {duration: 0}}]}
""")
    assert errors == ["step 'a' (flow.steps[0].config.then[0]): id: duplicate step id "
                      "(first at flow.setup[0])"]


def test_document_level_errors() -> None:
    assert errors_of("flow: {steps: []}") == ["flow: 'name' is a required property"]
    assert errors_of("[1, 2]")[0].startswith("document: [1, 2] is not of type 'object'")
    assert errors_of("flow: [unclosed")[0].startswith("<flow>: not valid YAML")


def test_bare_flow_without_wrapper_is_accepted() -> None:
    assert parse_flow_text("{name: bare, steps: []}").name == "bare"


def test_files_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("flow:\n  name: y\n  steps: []\n")
    (tmp_path / "f.json").write_text('{"flow": {"name": "j", "steps": []}}')
    (tmp_path / "bad.json").write_text('{"flow": ')
    assert load_flow_file(str(tmp_path / "f.yaml")).name == "y"
    assert load_flow_file(str(tmp_path / "f.json")).name == "j"
    with pytest.raises(FlowSchemaError, match="not valid JSON"):
        load_flow_file(str(tmp_path / "bad.json"))
    with pytest.raises(FlowError, match="cannot read flow file"):
        load_flow_file(str(tmp_path / "missing.yaml"))
