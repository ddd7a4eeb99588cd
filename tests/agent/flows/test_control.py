"""Flow control: condition, for_each, parallel, run_flow (cycles refused) and script steps."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.flows.actions.script import ManifestScriptRunner
from agent.flows.resolvers import DirectoryResolver, ManifestFlowResolver
from agent.manifest import load_manifest
from tests.agent.conftest import MANIFEST, SCRIPTS_DIR


def log_step(step_id: str, message: str) -> dict:
    return {"id": step_id, "action": "log", "config": {"message": message}}


def test_condition_runs_only_the_matching_branch(run_flow) -> None:
    def flow(value: int) -> dict:
        return {"flow": {"name": "c", "env": {"n": value}, "steps": [
            {"id": "check", "action": "condition",
             "config": {"condition": "n > 10",
                        "then": [log_step("big", "big ${n}"),
                                 {"id": "mark", "action": "transform", "config": {"value": "B"},
                                  "output": {"size": "value"}}],
                        "else": [log_step("small", "small ${n}")]},
             "assert": ["branch == 'then'"], "on_error": "continue"},
        ]}}

    assert run_flow(flow(42)).ok
    assert [m for _, m, _ in run_flow.logs] == ["big 42"]
    assert run_flow.final("check.mark")["outputs"] == {"size": "B"}
    assert run_flow.events[-1]["outputs"] == {"size": "B"}

    run_flow.logs.clear()
    run_flow.events.clear()
    run_flow(flow(1))
    assert [m for _, m, _ in run_flow.logs] == ["small 1"]
    assert not run_flow.of("check.big")
    assert run_flow.final("check")["error"] == "assertion failed: branch == 'then'"


def test_condition_fails_when_its_branch_fails(run_flow) -> None:
    result = run_flow({"flow": {"name": "c", "steps": [
        {"id": "check", "action": "condition",
         "config": {"condition": "true", "then": [
             {"id": "bad", "action": "assert", "config": {"expressions": ["false"]}}]}}]}})
    assert result.error == "step check: then branch failed: step check.bad: assertion failed: false"


def test_for_each_runs_steps_per_item_with_results_per_item(run_flow) -> None:
    result = run_flow({"flow": {"name": "loop", "env": {"users": [{"name": "ann"}, {"name": "bo"}]},
        "steps": [
            {"id": "each", "action": "for_each",
             "config": {"items": "${users}", "item_name": "user", "steps": [
                 {"id": "greet", "action": "transform",
                  "config": {"value": "hi ${user.name} #${index}"}},
                 {"id": "check", "action": "assert",
                  "config": {"expressions": ["greet.value endsWith string(index)"]}},
             ]},
             "assert": ["count == 2", "passed == 2", "results[1].results.greet.value == 'hi bo #1'",
                        "results[0].item.name == 'ann'"]},
            {"id": "literal", "action": "for_each",
             "config": {"items": [3, 4], "steps": [log_step("say", "n=${item}")]}},
        ]}})
    assert result.ok, run_flow.events
    ids = [e["id"] for e in run_flow.events if e["type"] == "step_completed"]
    assert ids == ["each[0].greet", "each[0].check", "each[1].greet", "each[1].check", "each",
                   "literal[0].say", "literal[1].say", "literal"]
    assert [m for _, m, _ in run_flow.logs] == ["n=3", "n=4"]


def test_for_each_stops_at_first_failing_item_unless_told_not_to(run_flow) -> None:
    def flow(fail_fast: bool) -> dict:
        return {"flow": {"name": "loop", "steps": [
            {"id": "each", "action": "for_each",
             "config": {"items": [1, 2, 3], "fail_fast": fail_fast, "steps": [
                 {"id": "odd", "action": "assert", "config": {"expressions": ["item % 2 == 1"]}}]}},
        ]}}

    result = run_flow(flow(True))
    assert result.error == "step each: item 1: step each[1].odd: assertion failed: item % 2 == 1"
    assert not run_flow.of("each[2].odd")
    run_flow.events.clear()
    run_flow(flow(False))
    assert run_flow.final("each[2].odd")["status"] == "passed"

    run_flow.events.clear()
    run_flow({"flow": {"name": "l", "env": {"x": "text"}, "steps": [
        {"id": "each", "action": "for_each", "config": {"items": "${x}", "steps": []}}]}})
    assert run_flow.final("each")["error"] == "for_each: items must be a list, got str"


def branch(step_id: str, seconds: float) -> dict:
    return {"id": step_id, "action": "delay", "config": {"duration": seconds}}


def test_parallel_runs_branches_concurrently_up_to_max_concurrent(run_flow) -> None:
    def timed(max_concurrent: int) -> float:
        started = time.monotonic()
        result = run_flow({"flow": {"name": "p", "steps": [
            {"id": "par", "action": "parallel",
             "config": {"max_concurrent": max_concurrent,
                        "branches": [branch("a", 0.15), branch("b", 0.15),
                                     [branch("c", 0.05), branch("d", 0.1)]]},
             "assert": ["passed == 3", "failed == 0"]}]}})
        assert result.ok, run_flow.events
        return time.monotonic() - started

    assert timed(3) < 0.35
    assert timed(1) >= 0.45
    starts = [e["id"] for e in run_flow.events if e["type"] == "step_started"]
    assert starts.index("par.c") < starts.index("par.d")  # a branch list runs in order


def test_parallel_fail_fast_cancels_the_other_branches(run_flow) -> None:
    def flow(fail_fast: bool) -> dict:
        return {"flow": {"name": "p", "steps": [
            {"id": "par", "action": "parallel",
             "config": {"fail_fast": fail_fast, "max_concurrent": 2, "branches": [
                 [branch("first", 0.1),
                  {"id": "boom", "action": "assert", "config": {"expressions": ["false"]}}],
                 branch("long", 1),
                 branch("queued", 0)]}}]}}

    started = time.monotonic()
    result = run_flow(flow(True))
    assert time.monotonic() - started < 0.8
    assert result.error.startswith("step par: branch 0 failed: step par.boom: assertion failed")
    assert run_flow.final("par.long")["error"] == "cancelled: branch 0 failed"
    assert not run_flow.of("par.queued")

    run_flow.events.clear()
    started = time.monotonic()
    run_flow(flow(False))
    assert time.monotonic() - started >= 1
    assert run_flow.final("par.long")["status"] == "passed"
    assert run_flow.final("par.queued")["status"] == "passed"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_run_flow_with_input_and_outputs(run_flow, tmp_path) -> None:
    write(tmp_path / "double.yaml", """
flow:
  name: double
  env: {factor: 2}
  steps:
    - id: calc
      action: transform
      config: {expressions: {result: "x * factor"}}
      output: {doubled: result}
""")
    result = run_flow({"flow": {"name": "main", "steps": [
        {"id": "sub", "action": "run_flow", "config": {"flow": "double", "input": {"x": 21}},
         "assert": ["outputs.doubled == 42"], "output": {"answer": "outputs.doubled"}}]}},
        resolver=DirectoryResolver(str(tmp_path)))
    assert result.ok and result.outputs == {"answer": 42}, run_flow.events
    assert run_flow.final("sub.calc")["outputs"] == {"doubled": 42}


def test_run_flow_cycles_are_refused(run_flow, tmp_path) -> None:
    for name, target in (("a", "b"), ("b", "a")):
        write(tmp_path / f"{name}.yaml", f"""
flow:
  name: {name}
  steps:
    - id: call_{target}
      action: run_flow
      config: {{flow: {target}}}
""")
    resolver = DirectoryResolver(str(tmp_path))
    result = run_flow(resolver("a"), resolver=resolver)
    assert run_flow.final("call_b.call_a")["error"] == "run_flow: cycle refused: a -> b -> a"
    assert result.error.startswith("step call_b: flow 'b' failed: step call_b.call_a:")

    run_flow({"flow": {"name": "x", "steps": [
        {"id": "self", "action": "run_flow", "config": {"flow": "x"}}]}}, resolver=resolver)
    assert run_flow.final("self")["error"] == "run_flow: cycle refused: x -> x"


def test_run_flow_resolvers_restrict_what_may_run(run_flow, tmp_path) -> None:
    step = {"flow": {"name": "m", "steps": [
        {"id": "go", "action": "run_flow", "config": {"flow": "../etc/passwd"}}]}}
    run_flow(step)
    assert run_flow.final("go")["error"].startswith("run_flow: this engine has no flow resolver")
    run_flow(step, resolver=DirectoryResolver(str(tmp_path)))
    assert "not found in" in run_flow.final("go")["error"]
    manifest = load_manifest(str(MANIFEST), str(SCRIPTS_DIR))
    run_flow(step, resolver=ManifestFlowResolver(manifest.flows.get))
    assert run_flow.final("go")["error"] == (
        "run_flow '../etc/passwd': flow_not_in_manifest: ../etc/passwd")


@pytest.fixture
def script_runner() -> ManifestScriptRunner:
    manifest = load_manifest(str(MANIFEST), str(SCRIPTS_DIR))
    return ManifestScriptRunner(manifest.scripts.get, str(SCRIPTS_DIR), job_id="job_flow")


def test_script_steps_run_manifest_scripts(run_flow, script_runner) -> None:
    result = run_flow({"flow": {"name": "s", "env": {"who": "flows"}, "steps": [
        {"id": "hello", "action": "script", "config": {"script": "hello.sh",
                                                       "params": {"name": "${who}"}},
         "assert": ["exit_code == 0", "stdout contains 'hello flows'",
                    "stdout contains 'job_id=job_flow'"]},
        {"id": "tolerated", "action": "script",
         "config": {"script": "fail.sh", "allow_failure": True},
         "assert": ["exit_code == 3", "stderr contains 'something went wrong'"]},
        {"id": "fails", "action": "script", "config": {"script": "fail.sh"},
         "on_error": "continue"},
        {"id": "unlisted", "action": "script", "config": {"script": "rm"},
         "on_error": "continue"},
    ]}}, script_runner=script_runner)
    assert result.ok, run_flow.events
    assert run_flow.final("fails")["error"] == "script 'fail.sh' exited with code 3"
    assert run_flow.final("unlisted")["error"] == "script_not_in_manifest: rm"
    assert "SCRIPTMESH_JOB_ID=job_flow" not in str(run_flow.events)  # stdout stays local


def test_script_step_timeout_kills_the_script(run_flow, script_runner) -> None:
    started = time.monotonic()
    run_flow({"flow": {"name": "s", "steps": [
        {"id": "slow", "action": "script",
         "config": {"script": "sleep.sh", "params": {"seconds": 5}}, "timeout": 0.3}]}},
        script_runner=script_runner)
    assert run_flow.final("slow")["error"] == "step timeout (0.3s) exceeded"
    assert time.monotonic() - started < 2.5
