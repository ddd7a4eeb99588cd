"""Configuration parsing and the CLI's one-line errors (run as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config

from .conftest import API_KEY, MANIFEST, REPO, SCRIPTS_DIR, StubHub

BASE_ENV = {"AGENT_NAME": "edge-1", "API_KEY": API_KEY}


def test_defaults(tmp_path: Path):
    config = load_config({}, {**BASE_ENV, "SPOOL_DIR": str(tmp_path)})
    assert config.orchestrator_url == "http://localhost:5000"
    assert (config.heartbeat_interval, config.workers, config.agent_port) == (60.0, 4, 8001)
    assert (config.scripts_dir, config.manifest_path) == ("/scripts", "/agent/script_manifest.json")
    assert (config.poll_wait, config.output_cap_bytes) == (25.0, 1024 * 1024)
    assert config.spool_dir == str(tmp_path)


def test_env_and_flags_flags_win():
    env = {**BASE_ENV, "WORKERS": "8", "AGENT_TAGS": "prod, eu ,", "HEARTBEAT_INTERVAL": "5"}
    config = load_config({"workers": "2", "orchestrator_url": "https://hub.example/"}, env)
    assert config.workers == 2 and config.tags == ("prod", "eu")
    assert config.heartbeat_interval == 5.0 and config.orchestrator_url == "https://hub.example"


def test_default_spool_dir_is_per_agent():
    assert load_config({}, BASE_ENV).spool_dir.endswith("/spool/edge-1")


def test_api_key_is_not_in_repr():
    assert API_KEY not in repr(load_config({}, BASE_ENV))
    assert "api_key" not in repr(AgentConfig("a", API_KEY))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"API_KEY": API_KEY}, "AGENT_NAME is required"),
        ({"AGENT_NAME": "a"}, "API_KEY is required"),
        ({**BASE_ENV, "ORCHESTRATOR_URL": "ftp://hub"}, "ORCHESTRATOR_URL must be"),
        ({**BASE_ENV, "ORCHESTRATOR_URL": "localhost:5000"}, "ORCHESTRATOR_URL must be"),
        ({**BASE_ENV, "WORKERS": "many"}, "WORKERS must be a number"),
        ({**BASE_ENV, "WORKERS": "0"}, "WORKERS must be >= 1"),
        ({**BASE_ENV, "CA_BUNDLE": "/nonexistent.pem"}, "CA_BUNDLE"),
        ({**BASE_ENV, "AGENT_NAME": "bad name"}, "AGENT_NAME"),
        ({**BASE_ENV, "API_KEY": "sm_live_a\nb"}, "API_KEY contains"),
    ],
)
def test_config_errors(env: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message):
        load_config({}, env)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.slow
def test_cli_missing_key_is_one_line_error(agent_env: dict[str, str]):
    env = {k: v for k, v in agent_env.items() if k != "API_KEY"}
    proc = run_cli("start", env=env)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "scriptmesh-agent: error: API_KEY is required (set API_KEY or --api-key)"
    ]


@pytest.mark.slow
def test_cli_bad_url_is_one_line_error(agent_env: dict[str, str]):
    proc = run_cli("start", "--orchestrator-url", "hub.local:5000", env=agent_env)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "ORCHESTRATOR_URL" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("content", [None, "{oops"])
def test_cli_unusable_manifest_at_start(agent_env: dict[str, str], tmp_path: Path, content):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    proc = run_cli("start", env={**agent_env, "MANIFEST_PATH": str(path)})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("scriptmesh-agent: error: ") and "manifest" in last


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403])
def test_cli_key_rejected_at_registration(agent_env: dict[str, str], hub: StubHub, status: int):
    hub.forced_status["/register-agent"] = status
    proc = run_cli("start", env=agent_env)
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("scriptmesh-agent: error: API key rejected at registration")
    assert API_KEY not in proc.stderr


@pytest.mark.slow
def test_check_manifest_command(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    proc = run_cli(
        "check-manifest", "--manifest", str(MANIFEST), "--scripts-dir", str(SCRIPTS_DIR), env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "backup.sh" in proc.stdout and "0 refused" in proc.stdout
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"scripts": [{"name": "x", "path": "/etc/passwd"}]}))
    proc = run_cli(
        "check-manifest", "--manifest", str(bad), "--scripts-dir", str(SCRIPTS_DIR), env=env
    )
    assert proc.returncode == 1 and "outside SCRIPTS_DIR" in proc.stdout
