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

from .conftest import API_KEY, SCRIPTS_DIR, StubHub, pid_alive, wait_for

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


@pytest.fixture
def runner(tmp_path: Path, scripts_dir: Path, hub: StubHub) -> JobRunner:
    entries = [
        {"name": p.name, "path": p.name} for p in scripts_dir.iterdir() if p.name != "printenv.py"
    ]
    entries.append({"name": "printenv.py", "path": "printenv.py", "interpreter": ["python3"]})
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps({"scripts": entries}))
    store = ManifestStore(str(manifest_path), str(scripts_dir))
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
    result = run(runner, "hello.sh", params={"name": payload, "other": "a b;c|d"})
    assert result["status"] == "success"
    assert f"hello {payload}" in result["stdout"]
    assert "other=a b;c|d" in result["stdout"]
    assert not marker.exists()


@pytest.mark.parametrize("name", ["1abc", "a-b", "a b", "", "BASH_ENV", "LD_PRELOAD", "PATH"])
def test_bad_param_name_fails_without_running(runner: JobRunner, hub: StubHub, name: str):
    result = run(runner, "hello.sh", params={name: "x"})
    assert result["status"] == "failed" and result["exit_code"] is None
    assert result["error"].startswith("invalid_param_name")
    assert not any(p.endswith("/start") for p in hub.paths()), "never acknowledged nor run"


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
