"""Running scripts for real: output, exit codes, params, caps, timeouts and cancels."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.client import HubClient
from agent.jobs import JobHandle
from agent.manifest import ManifestStore
from agent.process import CappedBuffer
from agent.reporter import ResultReporter
from agent.runner import JobRunner, RunnerSettings
from agent.spool import Spool

from .conftest import API_KEY, MANIFEST, SCRIPTS_DIR, StubHub, pid_alive, wait_for

pytestmark = pytest.mark.slow

EXTRA_SCRIPTS = {
    "big.sh": "#!/bin/sh\npython3 -c \"print('H' * 3000 + 'M' * 5000 + 'T' * 3000, end='')\"\n",
    "printenv.py": "import os\nprint(os.environ.get('cmd', ''))\n",
    "whereami.sh": '#!/bin/sh\npwd\nread line && echo "stdin:$line" || echo no-stdin\n',
    "trap.sh": "#!/bin/bash\ntrap '' TERM\nsleep 30 &\necho child_pid=$!\nwait\n",
}


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "scripts"
    directory.mkdir()
    for source in filter(Path.is_file, SCRIPTS_DIR.iterdir()):  # not scripts/flows/
        (directory / source.name).write_bytes(source.read_bytes())
        (directory / source.name).chmod(0o755)
    for name, text in EXTRA_SCRIPTS.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o755)
    return directory


def make_runner(tmp_path: Path, scripts_dir: Path, hub: StubHub,
                allow_undeclared: bool = False) -> JobRunner:
    """A runner over the scripts dir, with the repo manifest's param declarations."""
    declared = {e["name"]: e.get("params", []) for e in json.loads(MANIFEST.read_text())["scripts"]}
    entries = [
        {"name": p.name, "path": p.name, "params": declared.get(p.name, [])}
        for p in scripts_dir.iterdir() if p.name != "printenv.py"
    ]
    entries.append({"name": "printenv.py", "path": "printenv.py", "interpreter": ["python3"],
                    "params": [{"name": "cmd"}]})
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps({"scripts": entries}))
    store = ManifestStore(str(manifest_path), str(scripts_dir), allow_undeclared)
    store.reload()
    assert store.error is None
    client = HubClient(hub.url, API_KEY, "test-agent")
    settings = RunnerSettings(
        str(scripts_dir),
        output_cap_bytes=4000,
        kill_grace=1.0,
        api_key=API_KEY,
        stream_interval=0.1,
        backoff_base=0.05,
        backoff_cap=0.2,
    )
    return JobRunner(settings, store, client, ResultReporter(client, Spool(tmp_path / "spool")))


@pytest.fixture
def runner(tmp_path: Path, scripts_dir: Path, hub: StubHub) -> JobRunner:
    return make_runner(tmp_path, scripts_dir, hub)


def run(runner: JobRunner, script: str, handle: JobHandle | None = None, **job: Any) -> dict:
    handle = handle or JobHandle("job_" + script.replace(".", "_"))
    result = runner.run(
        {"job_id": handle.job_id, "kind": "script", "script": script, **job}, handle
    )
    assert result is not None
    return result


def test_success_with_stdout_and_result_delivered(runner: JobRunner, hub: StubHub):
    result = run(runner, "hello.sh", params={"name": "mesh"})
    assert result["status"] == "success" and result["exit_code"] == 0
    assert "hello mesh" in result["stdout"] and result["error"] is None
    assert re.match(r"\d{4}-\d\d-\d\dT.*Z$", result["started_at"])
    assert result["duration_ms"] >= 0
    assert "job_hello_sh" in hub.results
    assert hub.results["job_hello_sh"]["agent_name"] == "test-agent"
    assert hub.paths()[0] == "/agent/jobs/job_hello_sh/start"
    assert runner.reporter.spool.job_ids() == [], "delivered results leave the spool"


def test_child_env_has_job_id_and_no_api_key(runner: JobRunner, monkeypatch):
    monkeypatch.setenv("API_KEY", API_KEY)
    result = run(runner, "hello.sh")
    assert "SCRIPTMESH_JOB_ID=job_hello_sh" in result["stdout"]
    assert API_KEY not in result["stdout"]


def test_cwd_is_scripts_dir_and_stdin_is_devnull(runner: JobRunner, scripts_dir: Path):
    result = run(runner, "whereami.sh")
    assert result["stdout"].splitlines() == [str(scripts_dir.resolve()), "no-stdin"]


def test_interpreter_entry(runner: JobRunner):
    result = run(runner, "printenv.py", params={"cmd": "via-python"})
    assert result["stdout"].strip() == "via-python"


def test_nonzero_exit_with_stderr(runner: JobRunner):
    result = run(runner, "fail.sh")
    assert result["status"] == "failed" and result["exit_code"] == 3
    assert result["stdout"].strip() == "about to fail"
    assert result["stderr"].strip() == "something went wrong"


def test_params_are_literal_env_values_never_shell(runner: JobRunner, tmp_path: Path):
    marker = tmp_path / "pwned"
    payload = f"$(touch {marker}); `touch {marker}`"
    result = run(runner, "hello.sh", params={"name": payload})
    assert result["status"] == "success"
    assert f"hello {payload}" in result["stdout"]
    assert not marker.exists()


#: Names the security probe used (and friends): every one is undeclared, so refused.
TOOL_READ_NAMES = ["TAR_OPTIONS", "GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "OPENSSL_CONF", "HOME",
                   "TMPDIR", "SSL_CERT_FILE", "http_proxy", "BASH_ENV", "LD_PRELOAD", "PATH",
                   "1abc", "a-b", "a b", ""]


@pytest.mark.parametrize("name", TOOL_READ_NAMES)
def test_undeclared_param_fails_without_running(runner: JobRunner, hub: StubHub, name: str):
    result = run(runner, "hello.sh", params={name: "x"})
    assert result["status"] == "failed" and result["exit_code"] is None
    assert result["error"].startswith("invalid_params: hello.sh:")
    assert "not declared" in result["error"]
    assert not any(p.endswith("/start") for p in hub.paths()), "never acknowledged nor run"


def test_tar_options_cannot_run_a_command_through_backup(runner: JobRunner, tmp_path: Path):
    """The probe's exploit: TAR_OPTIONS=--checkpoint-action=exec=... made tar run sh."""
    marker = tmp_path / "pwned"
    evil = f"--checkpoint=1 --checkpoint-action=exec=sh -c 'touch {marker}'"
    result = run(runner, "backup.sh", params={"TAR_OPTIONS": evil,
                                              "target": str(tmp_path / "out")})
    assert result["status"] == "failed" and "TAR_OPTIONS" in result["error"]
    assert not marker.exists()
    ok = run(runner, "backup.sh", JobHandle("job_ok"), params={"target": str(tmp_path / "out")})
    assert ok["status"] == "success", ok["stderr"]
    assert list((tmp_path / "out").glob("backup_*.tar.gz")) and not marker.exists()


@pytest.mark.parametrize(("params", "fragment"), [
    ({"target": "/tmp/a b"}, "must match"),
    ({"target": "/tmp/ok", "level": 3}, "must be one of: 1, 5, 9"),
    ({"target": "/tmp/ok", "level": "x"}, "must be an integer"),
    ({"target": "/tmp/ok", "compress": "yes"}, "must be true or false"),
])
def test_declared_param_checks(runner: JobRunner, params: dict, fragment: str):
    result = run(runner, "backup.sh", params=params)
    assert result["status"] == "failed" and fragment in result["error"]


def test_required_param_and_defaults(runner: JobRunner, tmp_path: Path):
    missing = run(runner, "deploy.sh")
    assert missing["status"] == "failed" and "'version' is required" in missing["error"]
    out = tmp_path / "plain"
    plain = run(runner, "backup.sh", JobHandle("job_plain"),
                params={"target": str(out), "compress": False})
    assert plain["status"] == "success" and list(out.glob("backup_*.tar"))
    assert "gzip" not in plain["stdout"]
    gz = run(runner, "backup.sh", JobHandle("job_gz"), params={"target": str(out)})
    assert "(gzip -5)" in gz["stdout"], "the declared default level reaches the script"


def test_undeclared_params_only_with_the_setting_and_only_prefixed(
        tmp_path: Path, scripts_dir: Path, hub: StubHub):
    runner = make_runner(tmp_path, scripts_dir, hub, allow_undeclared=True)
    result = run(runner, "hello.sh", params={"other": "a b;c|d", "name": "x"})
    assert result["status"] == "success"
    assert "PARAM_other=a b;c|d" in result["stdout"] and "\nother=" not in result["stdout"]
    proxied = run(runner, "hello.sh", JobHandle("job_proxy"), params={"http_proxy": "h:1"})
    assert "PARAM_http_proxy=h:1" in proxied["stdout"]
    assert "\nhttp_proxy=" not in proxied["stdout"]
    for name in ("TAR_OPTIONS", "HOME", "LD_PRELOAD"):
        refused = run(runner, "hello.sh", JobHandle("job_" + name), params={name: "x"})
        assert refused["status"] == "failed" and "must match" in refused["error"]


def test_script_not_in_manifest_is_refused(runner: JobRunner, hub: StubHub):
    result = run(runner, "rm -rf /", JobHandle("job_evil"))
    assert result["status"] == "failed"
    assert result["error"] == "script_not_in_manifest: rm -rf /"
    assert hub.results["job_evil"]["error"] == "script_not_in_manifest: rm -rf /"
    assert not any(p.endswith("/start") for p in hub.paths())


def test_start_refused_by_hub_means_not_run(runner: JobRunner, hub: StubHub):
    hub.forced_status["/agent/jobs/job_x/start"] = 409
    assert runner.run({"job_id": "job_x", "script": "hello.sh"}, JobHandle("job_x")) is None
    assert "job_x" not in hub.results


def test_output_cap_keeps_head_and_tail(runner: JobRunner):
    result = run(runner, "big.sh")
    out = result["stdout"]
    assert result["truncated"] == {"stdout": True, "stderr": False}
    assert out.startswith("H" * 2000) and out.endswith("T" * 2000)
    assert "truncated" in out and "M" * 100 not in out


def test_capped_buffer_unit():
    buffer = CappedBuffer(10)
    buffer.feed(b"0123456789")
    assert buffer.text() == "0123456789" and not buffer.truncated
    buffer.feed(b"abcdef")
    assert buffer.truncated
    text = buffer.text()
    assert text.startswith("01234") and text.endswith("bcdef") and "6 bytes" in text
    assert buffer.read_live(0) == "0123456789"


def test_timeout_kills_whole_process_tree(runner: JobRunner):
    started = time.monotonic()
    result = run(runner, "sleep.sh", params={"seconds": "30"}, timeout=1)
    assert result["status"] == "timeout" and "timed out" in result["error"]
    assert time.monotonic() - started < 5
    child = int(re.search(r"child_pid=(\d+)", result["stdout"]).group(1))
    wait_for(lambda: not pid_alive(child), timeout=3)


def test_sigterm_ignored_escalates_to_sigkill(runner: JobRunner):
    result = run(runner, "trap.sh", timeout=0.5)
    assert result["status"] == "timeout"
    child = int(re.search(r"child_pid=(\d+)", result["stdout"]).group(1))
    wait_for(lambda: not pid_alive(child), timeout=3)


def test_cancel_kills_group(runner: JobRunner):
    handle = JobHandle("job_cancel")
    holder: dict[str, dict] = {}
    thread = threading.Thread(target=lambda: holder.update(r=run(runner, "sleep.sh", handle)))
    thread.start()
    time.sleep(0.5)
    handle.cancel("test")
    thread.join(10)
    result = holder["r"]
    assert result["status"] == "cancelled" and result["error"] == "cancelled: test"
    child = int(re.search(r"child_pid=(\d+)", result["stdout"]).group(1))
    wait_for(lambda: not pid_alive(child), timeout=3)


def test_output_streams_while_running_and_hub_cancel(runner: JobRunner, hub: StubHub):
    hub.cancel_on_output.add("job_stream")
    result = run(runner, "sleep.sh", JobHandle("job_stream"), params={"seconds": "20"})
    assert result["status"] == "cancelled"
    assert "requested by the hub" in result["error"]
    assert "child_pid=" in hub.outputs["job_stream"]["stdout"]


def test_result_is_spooled_when_hub_is_down(runner: JobRunner, hub: StubHub):
    hub.forced_status["/agent/jobs/job_down/result"] = 503
    result = run(runner, "hello.sh", JobHandle("job_down"))
    assert runner.reporter.spool.load("job_down") == result
    del hub.forced_status["/agent/jobs/job_down/result"]
    assert runner.reporter.resend_all() is True
    assert hub.results["job_down"]["status"] == "success"
    assert runner.reporter.spool.job_ids() == []
