"""The installed ``scriptmesh`` CLI as a subprocess against a live hub and real agents.

``run`` streams while the script runs and exits with its code; Ctrl-C cancels;
``logs -f`` resumes across a dropped connection byte for byte; ``fanout`` over
20 agents shows progress and groups results; ``--json`` parses; ``--help`` is
fast and has no side effects; login sessions refresh; dev credentials are found.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import BIN, free_port, pid_alive, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCRIPTMESH = str(BIN / "scriptmesh")
TICKER = "#!/usr/bin/env bash\nfor i in $(seq 1 ${count:-20}); do echo \"tick $i\"; " \
         "sleep 0.15; done\necho ticks done >&2\n"


def cli_env(tmp_path: Path, hub_url: str | None, token: str | None, **extra: str) -> dict:
    """An environment for the CLI alone: no hub settings, a private config dir."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SCRIPTMESH_", "REDIS_", "DATABASE_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"),
               PYTHONUNBUFFERED="1")
    if hub_url:
        env["SCRIPTMESH_URL"] = hub_url
    if token:
        env["SCRIPTMESH_TOKEN"] = token
    env.update(extra)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``cli(*args, hub=, token=, cwd=, timeout=)``: run the CLI to completion."""
    (tmp_path / "cwd").mkdir(exist_ok=True)

    def run(*args: str, hub: LiveHub | None = None, token: str | None = None,
            cwd: Path | None = None, timeout: float = 60,
            **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([SCRIPTMESH, *args], capture_output=True, text=True,
                              timeout=timeout, cwd=str(cwd or tmp_path / "cwd"),
                              env=cli_env(tmp_path, hub.url if hub else None, token, **env))
    return run


@pytest.fixture
def agent(live_hub: LiveHub, operator: dict[str, Any],
          start_agent: Callable[..., AgentProc]) -> AgentProc:
    """A real agent that also whitelists ticker.sh (20 lines, 0.15 s apart)."""
    agent = start_agent("cli-1", operator["agent_key"](), live_hub)
    script = agent.scripts_dir / "ticker.sh"
    script.write_text(TICKER)
    script.chmod(0o755)
    manifest = agent.manifest()
    manifest["scripts"].append({"name": "ticker.sh", "path": "ticker.sh",
                                "params": [{"name": "count", "type": "integer"}]})
    agent.write_manifest(manifest)
    wait_for(lambda: "ticker.sh" in live_hub.call(
        "GET", "/agents", operator["token"])[1][agent.name]["scripts"], 20,
        what="ticker.sh listed")
    return agent


def popen_cli(tmp_path: Path, hub_url: str, token: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([SCRIPTMESH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(tmp_path),
                            env=cli_env(tmp_path, hub_url, token))


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[str, str]:
    """The rest of stdout and stderr once ``proc`` exits (after readline()s on stdout:
    ``communicate`` would skip what the text wrapper already buffered)."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(5)
    finally:
        timer.cancel()
    return out, err


def latest_job(hub: LiveHub, token: str, agent: str) -> dict[str, Any]:
    jobs = hub.call("GET", f"/jobs?agent={agent}&limit=1", token)[1]["jobs"]
    return hub.call("GET", f"/jobs/{jobs[0]['job_id']}", token)[1]


def test_run_streams_output_while_the_script_runs_and_returns_its_exit_code(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path,
        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    token = operator["token"]
    proc = popen_cli(tmp_path, live_hub.url, token, "run", agent.name, "sleep.sh",
                     "-p", "seconds=3")
    try:
        first = proc.stdout.readline()
        assert first.startswith("child_pid="), first
        assert latest_job(live_hub, token, agent.name)["status"] == "running"
        out, err = finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert first + out == latest_job(live_hub, token, agent.name)["stdout"]
    assert out.endswith("done sleeping\n")

    failed = cli("run", agent.name, "fail.sh", hub=live_hub, token=token)
    assert failed.returncode == 3, failed.stderr
    assert "exit 3" in failed.stderr
    timed_out = cli("run", agent.name, "sleep.sh", "-p", "seconds=20", "--timeout", "1",
                    hub=live_hub, token=token)
    assert timed_out.returncode == 124, timed_out.stderr
    missing = cli("run", agent.name, "nope.sh", hub=live_hub, token=token)
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "not in the manifest" in missing.stderr


def test_ctrl_c_cancels_the_job(live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc,
                                tmp_path: Path) -> None:
    token = operator["token"]
    proc = popen_cli(tmp_path, live_hub.url, token, "run", agent.name, "sleep.sh",
                     "-p", "seconds=60")
    try:
        child_pid = int(proc.stdout.readline().strip().split("=")[1])
        proc.send_signal(signal.SIGINT)
        out, err = finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Cancelling job" in err
    job = latest_job(live_hub, token, agent.name)
    assert job["status"] == "cancelled", job
    wait_for(lambda: not pid_alive(child_pid), 10, what="the script's child killed")


class DroppingProxy:
    """A TCP relay to the hub whose open connections the test can cut at will."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.sockets += [client, upstream]
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def close(self) -> None:
        self.server.close()
        self.drop()


@pytest.fixture
def proxy(live_hub: LiveHub) -> Iterator[DroppingProxy]:
    relay = DroppingProxy(live_hub.port)
    yield relay
    relay.close()


def test_logs_follow_resumes_after_a_dropped_connection_without_gaps_or_duplicates(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path,
        proxy: DroppingProxy, cli: Callable[..., subprocess.CompletedProcess]) -> None:
    token = operator["token"]
    job_id = cli("run", agent.name, "ticker.sh", "-p", "count=20", "--detach",
                 hub=live_hub, token=token).stdout.strip()
    assert job_id.startswith("job_")
    proc = popen_cli(tmp_path, f"http://127.0.0.1:{proxy.port}", token, "logs", "-f", job_id)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines == ["tick 1\n", "tick 2\n", "tick 3\n"], lines
        proxy.drop()  # mid-stream: the CLI must reconnect with Last-Event-ID
        out, err = finish(proc, 40)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    job = live_hub.call("GET", f"/jobs/{job_id}", token)[1]
    assert "".join(lines) + out == job["stdout"]
    assert job["stdout"] == "".join(f"tick {i}\n" for i in range(1, 21))
    assert err == "ticks done\n"  # stderr streamed too, once
    assert proxy.connections >= 2  # it did reconnect

    text = cli("logs", job_id, hub=live_hub, token=token)
    assert text.returncode == 0 and text.stdout == job["stdout"]
    assert cli("logs", job_id, "--stderr", hub=live_hub, token=token).stdout == "ticks done\n"


def test_json_output_parses(live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc,
                            cli: Callable[..., subprocess.CompletedProcess]) -> None:
    token = operator["token"]
    fleet = json.loads(cli("agents", "list", "--json", "--status", "online",
                           hub=live_hub, token=token).stdout)
    assert fleet[agent.name]["status"] == "online"
    finished = cli("run", agent.name, "hello.sh", "-p", "name=json", "--json",
                   hub=live_hub, token=token)
    assert finished.returncode == 0, finished.stderr
    job = json.loads(finished.stdout)
    assert job["status"] == "success" and "hello json" in job["stdout"]
    listed = json.loads(cli("jobs", "list", "--json", hub=live_hub, token=token).stdout)
    assert job["job_id"] in [j["job_id"] for j in listed["jobs"]]
    shown = json.loads(cli("jobs", "show", job["job_id"], "--json", hub=live_hub,
                           token=token).stdout)
    assert shown["stdout"] == job["stdout"]
    waited = cli("jobs", "wait", job["job_id"], "--json", hub=live_hub, token=token)
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "success"
    table = cli("agents", "list", hub=live_hub, token=token)
    assert agent.name in table.stdout and "\x1b[" not in table.stdout  # no colours off a TTY


def test_help_is_fast_and_has_no_side_effects(tmp_path: Path,
                                              cli: Callable[..., subprocess.CompletedProcess]
                                              ) -> None:
    def snapshot() -> set[str]:
        return {str(p) for p in tmp_path.rglob("*")}

    def redis_servers() -> set[int]:
        found = set()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if b"redis-server" in cmdline.read_bytes():
                    found.add(int(cmdline.parent.name))
            except OSError:
                continue
        return found

    cli("--help")  # warm the disk cache
    before, servers = snapshot(), redis_servers()
    timings, cpu = [], []
    for _ in range(3):
        used, started = os.times(), time.perf_counter()
        result = cli("--help")
        timings.append(time.perf_counter() - started)
        after = os.times()
        cpu.append(after.children_user + after.children_system
                   - used.children_user - used.children_system)
        assert result.returncode == 0
    # The CPU the CLI burns is the measure that holds on a shared, loaded test machine;
    # the wall clock gets a margin for the scheduler (~0.06 s when the machine is idle).
    assert min(cpu) < 0.3, cpu
    assert min(timings) < 1.0, timings
    assert snapshot() == before
    assert redis_servers() <= servers
    text = result.stdout
    assert "Admin commands" in text and "dev" in text and "fanout" in text
    for flask_only in ("routes", "shell", "--app", "--env-file"):
        assert flask_only not in text
    assert "  run " in text  # our run, not Flask's
    probe = subprocess.run([str(BIN / "python"), "-c",
                            "import sys, scriptmesh_cli.main; "
                            "print(sorted(m for m in ('flask', 'sqlalchemy', 'requests', 'rq') "
                            "if m in sys.modules))"], capture_output=True, text=True,
                           cwd=str(tmp_path))
    assert probe.stdout.strip() == "[]", probe.stderr


def test_admin_command_without_a_database_names_the_data_dir(
        tmp_path: Path, cli: Callable[..., subprocess.CompletedProcess]) -> None:
    result = cli("users", "create", "--email", "a@b.example", "--password", "x" * 16)
    assert result.returncode == 1
    assert str(tmp_path / "cwd" / "instance") in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "cwd" / "instance").exists()
    assert cli("worker").returncode == 1


def test_login_session_is_private_and_refreshes(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path,
        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    result = cli("login", "--email", operator["email"], "--password", operator["password"],
                 hub=live_hub)
    assert result.returncode == 0, result.stderr
    session_file = tmp_path / "xdg" / "scriptmesh" / "session.json"
    assert session_file.stat().st_mode & 0o777 == 0o600
    assert operator["password"] not in session_file.read_text()
    assert agent.name in json.loads(cli("agents", "list", "--json", hub=live_hub).stdout)
    sessions = json.loads(session_file.read_text())
    sessions[live_hub.url]["access_token"] = "expired.or.bogus"
    session_file.write_text(json.dumps(sessions))
    assert agent.name in json.loads(cli("agents", "list", "--json", hub=live_hub).stdout)
    assert json.loads(session_file.read_text())[live_hub.url]["access_token"] != \
        "expired.or.bogus"
    assert cli("logout", hub=live_hub).returncode == 0
    anonymous = cli("agents", "list", hub=live_hub)
    assert anonymous.returncode == 1 and "scriptmesh login" in anonymous.stderr


def test_dev_credentials_are_found_beside_the_hub(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc, tmp_path: Path,
        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    project = tmp_path / "project"
    (project / "instance").mkdir(parents=True)
    (project / "instance" / "dev-credentials.json").write_text(json.dumps(
        {"email": operator["email"], "password": operator["password"],
         "operator_api_key": operator["token"], "agent_api_key": "unused"}))
    listed = cli("agents", "list", "--json", hub=live_hub, cwd=project)
    assert agent.name in json.loads(listed.stdout), listed.stderr
    # API keys need more than the operator key: the CLI logs in as the dev admin.
    created = cli("keys", "create", "--name", "web-2", "--scope", "agent", hub=live_hub,
                  cwd=project)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("sm_live_")


class LiveTestClient:
    """The Flask test client's ``post`` over real HTTP, so ``SimAgent`` drives a live hub."""

    def __init__(self, url: str) -> None:
        import requests

        self.url, self.session = url, requests.Session()

    def post(self, path: str, json: Any = None, headers: dict | None = None) -> Any:
        from types import SimpleNamespace

        response = self.session.post(self.url + path, json=json, headers=headers, timeout=30)
        return SimpleNamespace(status_code=response.status_code,
                               json=response.json() if response.content else None)


class SimFleet:
    """``count`` agents speaking the protocol over HTTP from threads; the last two fail."""

    def __init__(self, hub: LiveHub, new_key: Callable[[], str], count: int) -> None:
        from tests.orchestrator.agent_sim import SimAgent

        self.stopping = threading.Event()
        self.agents = [SimAgent(LiveTestClient(hub.url), new_key(), f"sim-{i:02d}")
                       for i in range(count)]
        for sim in self.agents:
            assert sim.register(tags=["fleet"]).status_code == 200
        self.threads = [threading.Thread(target=self._work, args=(sim, i >= count - 2),
                                         daemon=True) for i, sim in enumerate(self.agents)]
        for thread in self.threads:
            thread.start()

    def _work(self, sim: Any, failing: bool) -> None:
        while not self.stopping.is_set():
            sim.heartbeat()
            for job in sim.poll_jobs(wait=0.5):
                sim.start(job["job_id"])
                time.sleep(0.3)
                stdout = "disk full\n" if failing else f"hello {job['params']['name']}\n"
                sim.output(job["job_id"], stdout=(0, stdout))
                sim.result(job["job_id"], "failed" if failing else "success",
                           exit_code=4 if failing else 0, stdout=stdout)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)


def test_fanout_over_20_agents_shows_progress_and_groups_results(
        live_hub: LiveHub, operator: dict[str, Any],
        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    fleet = SimFleet(live_hub, operator["agent_key"], 20)
    try:
        result = cli("fanout", "hello.sh", "--tag", "fleet", "-p", "name=mesh",
                     "--max-concurrency", "5", hub=live_hub, token=operator["token"])
        as_json = cli("fanout", "hello.sh", "--agents", "sim-00,sim-01", "-p", "name=j",
                      "--json", hub=live_hub, token=operator["token"])
    finally:
        fleet.stop()
    assert result.returncode == 1, result.stderr  # two targets failed
    progress = [line for line in result.stderr.splitlines() if "finished" in line]
    assert len(progress) >= 3, result.stderr  # it moved while we watched
    assert progress[-1].endswith("20/20 finished - done 18, failed 2, running 0, pending 0")
    out = result.stdout
    assert "== 18 agent(s), success, exit 0 (most agents)" in out
    assert "   | hello mesh" in out
    assert "== 2 agent(s), failed, exit 4 (outliers)\n   sim-18, sim-19\n   | disk full" in out
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["counts"]["success"] == 2


def test_flow_runs_and_the_management_commands(
        live_hub: LiveHub, operator: dict[str, Any], agent: AgentProc,
        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    token = operator["token"]
    flow = cli("run", agent.name, "--flow", "health", "-v", f"hub_url={live_hub.url}",
               hub=live_hub, token=token)
    assert flow.returncode == 0, flow.stderr
    assert "hub_health" in flow.stdout
    created = json.loads(cli("schedules", "create", "0 2 * * *", "hello.sh", "--agent",
                             agent.name, "-p", "name=cron", "--json", hub=live_hub,
                             token=token).stdout)
    schedule_id = created["id"]
    assert cli("schedules", "pause", schedule_id, hub=live_hub, token=token).returncode == 0
    listed = json.loads(cli("schedules", "list", "--json", hub=live_hub, token=token).stdout)
    assert [s["enabled"] for s in listed["schedules"] if s["id"] == schedule_id] == [False]
    assert cli("schedules", "resume", schedule_id, hub=live_hub, token=token).returncode == 0
    assert cli("schedules", "delete", schedule_id, hub=live_hub, token=token).returncode == 0
    missing = cli("schedules", "pause", schedule_id, hub=live_hub, token=token)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    fanouts = json.loads(cli("fanouts", "list", "--json", hub=live_hub, token=token).stdout)
    assert fanouts["fanouts"] == []
    denied = cli("keys", "list", hub=live_hub, token=token)  # an operator key is not admin
    assert denied.returncode == 1 and "admin" in denied.stderr


def test_agent_pause_and_resume_from_the_cli(live_hub: LiveHub, operator: dict[str, Any],
                                             agent: AgentProc,
                                             cli: Callable[..., subprocess.CompletedProcess]
                                             ) -> None:
    token = operator["token"]
    paused = cli("agents", "pause", agent.name, "--note", "kernel upgrade", "--json",
                 hub=live_hub, token=token)
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["paused"]
    job_id = json.loads(cli("run", agent.name, "hello.sh", "--detach", "--json",
                            hub=live_hub, token=token).stdout)["job_id"]
    time.sleep(2)
    assert live_hub.call("GET", f"/jobs/{job_id}", token)[1]["status"] == "pending", \
        "a paused agent gets nothing"
    resumed = cli("agents", "resume", agent.name, hub=live_hub, token=token)
    assert resumed.returncode == 0 and agent.name in resumed.stdout
    waited = cli("jobs", "wait", job_id, "--json", hub=live_hub, token=token)
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "success"
