"""The hub's process entry points: gunicorn settings, ``scriptmesh worker``, child supervision."""

from __future__ import annotations

import io
import runpy
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from flask import Flask

from orchestrator.cli import main
from orchestrator.dev.children import ChildProcess, Console, stop_children
from orchestrator.dev.supervisor import local_url, port_is_free
from orchestrator.queues import background_queue
from tests.e2e.proc_helpers import BIN, Proc, pid_alive, process_env, record_background

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "orchestrator" / "gunicorn_conf.py"


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in ("HOST", "PORT", "WEB_CONCURRENCY", "SCRIPTMESH_ENV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_uses_gevent_sized_for_idle_long_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(monkeypatch)

    assert conf["worker_class"] == "gevent"
    assert conf["worker_connections"] >= 2000
    assert conf["preload_app"] is False, "the app must load after gevent patched the worker"
    assert conf["timeout"] >= 60 and conf["graceful_timeout"] >= 25
    assert conf["bind"] == "0.0.0.0:5000"
    assert conf["workers"] >= 2
    assert conf["accesslog"] == "-"


def test_gunicorn_reads_bind_workers_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_gunicorn_conf(monkeypatch, HOST="127.0.0.1", PORT="8080", WEB_CONCURRENCY="3",
                              SCRIPTMESH_ENV="production")

    assert conf["bind"] == "127.0.0.1:8080"
    assert conf["workers"] == 3
    assert conf["accesslog"] is None


def test_process_commands_are_registered() -> None:
    runner = CliRunner()
    for command, flag in (("dev", "--no-agent"), ("worker", "--burst"), ("scheduler", "leader")):
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert flag in result.output


def test_local_url_and_port_probe() -> None:
    assert local_url("0.0.0.0", 5000) == "http://127.0.0.1:5000"
    assert local_url("::1", 8080) == "http://[::1]:8080"
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert port_is_free("127.0.0.1", busy.getsockname()[1]) is False


@pytest.mark.slow
def test_worker_burst_runs_a_background_task_in_an_app_context(
        app: Flask, hub_env: dict[str, str], redis_url: str, tmp_path: Path) -> None:
    key = f"test:worker:{uuid.uuid4().hex}"
    with app.app_context():
        background_queue().enqueue(record_background, key, "hello")

    proc = Proc([str(BIN / "scriptmesh"), "worker", "--burst"], process_env(hub_env),
                tmp_path / "worker.log")
    try:
        assert proc.wait(60) == 0, proc.output()
    finally:
        proc.stop()
    connection = redis.Redis.from_url(redis_url)
    (entry,) = connection.lrange(key, 0, -1)
    value, app_name, _pid = entry.decode().split(":")
    assert (value, app_name) == ("hello", "orchestrator")
    with app.app_context():
        assert background_queue().count == 0


def test_child_output_is_prefixed_and_stop_escalates_to_sigkill() -> None:
    out = io.StringIO()
    console = Console(out)
    stubborn = ChildProcess("stubborn", [sys.executable, "-c", (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], {"PATH": "/usr/bin:/bin"}, console)
    polite = ChildProcess("polite", [sys.executable, "-c", "import time; time.sleep(60)"],
                          {"PATH": "/usr/bin:/bin"}, console)
    stubborn.start()
    polite.start()
    deadline = time.monotonic() + 10
    while "[stubborn] ready" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)

    started = time.monotonic()
    stop_children([stubborn, polite], grace=0.5)

    assert time.monotonic() - started < 5
    assert polite.exit_code() == -signal.SIGTERM
    assert stubborn.exit_code() == -signal.SIGKILL
    assert not pid_alive(stubborn.pid) and not pid_alive(polite.pid)
    assert "[stubborn] ready" in out.getvalue()
    assert "stubborn did not stop in time" in out.getvalue()
