"""Local ``run-flow``: prints steps as they run, ``--var`` variables, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys

from click.testing import CliRunner

from agent.flows.local import run_flow_cli, run_flow_command
from tests.agent.conftest import MANIFEST, REPO, SCRIPTS_DIR

FLOW = """
flow:
  name: local
  env: {greeting: hello}
  steps:
    - id: login
      action: http_request
      config:
        method: POST
        url: "${base_url}/login"
        json: {user: u, password: "${password}"}
      assert: ["status == 200"]
      output: {token: body.token}
    - id: say
      action: log
      config: {message: "${greeting} ${token}"}
  teardown:
    - id: bye
      action: log
      config: {message: done, level: debug}
"""


def test_run_flow_command_prints_steps_and_returns_exit_codes(write_flow, app_server) -> None:
    path = write_flow("local.yaml", FLOW)
    out = io.StringIO()
    code = run_flow_command(str(path), {"base_url": app_server.url, "password": "pw"}, out)
    lines = out.getvalue().splitlines()
    assert code == 0, lines
    assert lines[0] == "[start] login (http_request)"
    assert lines[1].startswith("[ ok  ] login ") and lines[1].endswith("ms")
    assert lines[2].strip() == "token = 'tok-123'"
    assert "[info ] say: hello tok-123" in lines
    assert "[debug] bye: done" in lines
    assert lines[-1].startswith("flow 'local' passed in ")

    out = io.StringIO()
    code = run_flow_command(str(path), {"base_url": app_server.url, "password": "bad"}, out)
    text = out.getvalue()
    assert code == 1
    # local runs show the actual values: nothing leaves this machine
    assert "[FAIL ] login" in text
    assert "assertion failed: status == 200 (actual: status = 401)" in text
    assert "  error: step login: assertion failed" in text


def test_invalid_flow_exits_2_listing_the_problems(write_flow) -> None:
    path = write_flow("bad.yaml", "flow: {name: b, steps: [{id: s, action: nope}]}")
    out = io.StringIO()
    assert run_flow_command(str(path), {}, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == f"run-flow: invalid flow {path}:"
    assert lines[1].startswith("  - step 's' (flow.steps[0]): action: 'nope' is not one of")
    assert len(lines) == 2
    out = io.StringIO()
    assert run_flow_command(str(path.parent / "missing.yaml"), {}, out) == 2
    assert "cannot read flow file" in out.getvalue()


def test_click_command_parses_vars_and_uses_the_manifest(write_flow, monkeypatch) -> None:
    monkeypatch.setenv("MANIFEST_PATH", str(MANIFEST))
    monkeypatch.setenv("SCRIPTS_DIR", str(SCRIPTS_DIR))
    path = write_flow("s.yaml", """
flow:
  name: s
  steps:
    - id: hello
      action: script
      config: {script: hello.sh, params: {name: "${who}"}}
      assert: ["stdout contains 'hello ' + who"]
""")
    result = CliRunner().invoke(run_flow_cli, [str(path), "--var", "who=cli=user"])
    assert result.exit_code == 0, result.output
    assert "[ ok  ] hello" in result.output
    result = CliRunner().invoke(run_flow_cli, [str(path), "--var", "novalue"])
    assert result.exit_code == 2 and "is not NAME=VALUE" in result.output


def test_run_flow_as_a_real_process_streams_lines(write_flow) -> None:
    path = write_flow("p.yaml", """
flow:
  name: p
  steps:
    - {id: one, action: log, config: {message: first}}
    - {id: two, action: delay, config: {duration: 0.05}}
""")
    code = "from agent.flows.local import run_flow_cli; run_flow_cli()"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["[start] one (log)", "[info ] one: first"]
    assert lines[2].startswith("[ ok  ] one ") and lines[3] == "[start] two (delay)"
    assert lines[-1].startswith("flow 'p' passed")
