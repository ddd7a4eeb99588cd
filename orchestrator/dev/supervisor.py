"""The ``scriptmesh dev`` supervisor: Redis, database, credentials, then the child processes.

Start-up: the embedded Redis (unless ``REDIS_URL`` is set; a child process of
the supervisor, refused if that data dir's server already runs), the
migrations, the dev credentials, then the hub (gunicorn), and once it answers
``/health`` the worker, the scheduler and the local agent. The supervisor then
watches: SIGINT/SIGTERM stop everything (a second signal kills at once); a
child that exits on its own is reported and everything else is stopped, exit
status 1. Stop order: the agent first (with its whole drain timeout), then the
scheduler, the worker, the hub, and the embedded Redis last.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from agent.config import DEFAULT_DRAIN_TIMEOUT, DEFAULT_KILL_GRACE
from orchestrator.dev.children import ChildProcess, Console, stop_children
from orchestrator.dev.credentials import LOCAL_AGENT_NAME, DevCredentials
from orchestrator.embedded_redis import EmbeddedRedis, EmbeddedRedisError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AGENT_PORT = 8001
DEV_HEARTBEAT_INTERVAL = "10"
#: Tags of the local agent (the README's fan-out example selects on them).
DEV_AGENT_TAGS = "local,dev"
#: gunicorn workers in dev unless WEB_CONCURRENCY says otherwise (each serves thousands).
DEV_WEB_CONCURRENCY = "2"
HUB_START_TIMEOUT = 60.0
#: The hub answers its long-polls at once on SIGTERM; this only bounds a stuck request.
DEV_HUB_GRACEFUL_TIMEOUT = "3"
#: On top of the agent's drain timeout and kill grace: its own margin to report
#: cancelled jobs (``agent.daemon.FORCE_REPORT_MARGIN``) and some slack.
AGENT_STOP_MARGIN = 15.0
STOP_GRACE = 10.0
WATCH_INTERVAL = 0.2


@dataclass
class DevOptions:
    port: int = 5000
    host: str = "127.0.0.1"
    data_dir: str | None = None
    start_agent: bool = True


class StopRequested:
    """Signal handler state: the first SIGINT/SIGTERM asks to stop, a second to hurry."""

    def __init__(self) -> None:
        self.signals = 0

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1

    @property
    def stop(self) -> bool:
        return self.signals > 0

    @property
    def force(self) -> bool:
        return self.signals > 1


def run_dev(options: DevOptions) -> int:
    """Run the whole dev stack until Ctrl-C; return the exit status."""
    console = Console()
    data_dir = Path(options.data_dir or os.environ.get("SCRIPTMESH_DATA_DIR")
                    or "instance").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not port_is_free(options.host, options.port):
        console.line("dev", f"error: port {options.port} on {options.host} is in use; "
                            "pick another with --port")
        return 2
    try:
        redis_server, redis_url = start_redis(data_dir, console)
    except EmbeddedRedisError as exc:
        console.line("dev", f"error: {exc}")
        return 2
    try:
        credentials = prepare_database(data_dir, redis_url, console)
        env = child_environment(data_dir, redis_url)
        return supervise(options, env, credentials, console)
    finally:
        stop_redis(redis_server, console)
        # Everything is stopped: spare the exit a full collection of the app we imported
        # (seconds on a busy machine, for memory the OS takes back anyway).
        gc.freeze()


def start_redis(data_dir: Path, console: Console) -> tuple[EmbeddedRedis | None, str]:
    """``REDIS_URL`` if set, else the data dir's embedded server as our child process.

    :raises EmbeddedRedisError: that data dir's server is already running.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        console.line("dev", "using Redis at REDIS_URL")
        return None, url
    server = EmbeddedRedis(data_dir).start()
    console.line("dev", f"started embedded Redis {server.url} (pid {server.pid})")
    return server, server.url


def stop_redis(server: EmbeddedRedis | None, console: Console) -> None:
    """Shut the embedded server down (last), saving its data for the next start."""
    if server is None:
        return
    server.stop(timeout=STOP_GRACE)
    console.line("dev", "embedded Redis stopped")


def prepare_database(data_dir: Path, redis_url: str, console: Console) -> DevCredentials:
    """Migrate the database to the latest schema and make sure the dev credentials work."""
    from flask_migrate import upgrade

    from orchestrator import create_app
    from orchestrator.dev.credentials import ensure_dev_credentials
    from orchestrator.extensions import db, redis_store

    app = create_app({"DATA_DIR": str(data_dir), "REDIS_URL": redis_url})
    with app.app_context():
        upgrade()
        console.line("dev", "database schema is up to date")
        credentials = ensure_dev_credentials(data_dir)
        db.session.remove()
        db.engine.dispose()
        redis_store.connection.close()
    return credentials


def child_environment(data_dir: Path, redis_url: str) -> dict[str, str]:
    """What every child shares: the data dir (and so its secrets), the Redis, the database."""
    env = dict(os.environ)
    env.update({"SCRIPTMESH_DATA_DIR": str(data_dir), "REDIS_URL": redis_url,
                "PYTHONUNBUFFERED": "1"})
    return env


def supervise(options: DevOptions, env: dict[str, str], credentials: DevCredentials,
              console: Console) -> int:
    """Start the children, print the banner, and watch until a signal or a death."""
    requested = StopRequested()
    previous = {sig: signal.signal(sig, requested) for sig in (signal.SIGINT, signal.SIGTERM)}
    url = local_url(options.host, options.port)
    children = build_children(options, env, credentials, url, console)
    started: list[ChildProcess] = []
    try:
        code = start_children(children, started, url, requested, console)
        if code is None:
            console.block(banner(url, credentials, options, env))
            code = watch(started, requested, console)
        return code
    finally:
        console.line("dev", "stopping")
        agents = [child for child in started if child.name == "agent"]
        stop_children(agents, agent_stop_grace(env), lambda: requested.force)
        stop_children([c for c in reversed(started) if c not in agents], STOP_GRACE,
                      lambda: requested.force)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def agent_stop_grace(env: dict[str, str]) -> float:
    """How long the agent may take to stop: its whole drain, the kills, then reporting."""
    def seconds(name: str, default: float) -> float:
        try:
            return float(env.get(name) or default)
        except ValueError:
            return default

    return (seconds("DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT)
            + seconds("KILL_GRACE", DEFAULT_KILL_GRACE) + AGENT_STOP_MARGIN)


def start_children(children: list[ChildProcess], started: list[ChildProcess], url: str,
                   requested: StopRequested, console: Console) -> int | None:
    """Start the hub, wait until it is healthy, then the rest; an exit status on failure."""
    hub, *others = children
    hub.start()
    started.append(hub)
    if not wait_until_healthy(url, hub, requested):
        if requested.stop:
            return 0
        console.line("dev", f"error: the hub did not become healthy at {url}/health")
        return 1
    for child in others:
        child.start()
        started.append(child)
    return None


def watch(children: list[ChildProcess], requested: StopRequested, console: Console) -> int:
    """Block until a stop signal (0) or a child's own exit (1)."""
    while not requested.stop:
        for child in children:
            code = child.exit_code()
            if code is not None:
                child.finish_output()
                console.line("dev", f"error: {child.name} exited unexpectedly "
                                    f"(status {code}); stopping everything")
                return 1
        time.sleep(WATCH_INTERVAL)
    return 0


def build_children(options: DevOptions, env: dict[str, str], credentials: DevCredentials,
                   url: str, console: Console) -> list[ChildProcess]:
    """hub, worker, scheduler and (unless disabled or impossible) the local agent."""
    hub_env = dict(env, HOST=options.host, PORT=str(options.port))
    hub_env.setdefault("WEB_CONCURRENCY", DEV_WEB_CONCURRENCY)
    scriptmesh = console_script("scriptmesh", ["-m", "orchestrator.cli"])
    conf = str(Path(__file__).resolve().parents[1] / "gunicorn_conf.py")
    children = [
        ChildProcess("hub", [sys.executable, "-m", "gunicorn", "-c", conf, "--graceful-timeout",
                             DEV_HUB_GRACEFUL_TIMEOUT, hub_app_target()],
                     hub_env, console, cwd=str(REPO_ROOT)),
        ChildProcess("worker", [*scriptmesh, "worker"], env, console),
        ChildProcess("scheduler", [*scriptmesh, "scheduler"], env, console),
    ]
    if options.start_agent:
        agent = build_agent(env, credentials, url, console)
        if agent is not None:
            children.append(agent)
    return children


def build_agent(env: dict[str, str], credentials: DevCredentials, url: str,
                console: Console) -> ChildProcess | None:
    """The local agent, running the repository's example scripts."""
    manifest = REPO_ROOT / "manifests" / "script_manifest.json"
    if not manifest.exists():
        console.line("dev", f"no {manifest}: not starting the local agent")
        return None
    data_dir = Path(env["SCRIPTMESH_DATA_DIR"])
    agent_env = dict(env, AGENT_NAME=LOCAL_AGENT_NAME, ORCHESTRATOR_URL=url,
                     API_KEY=credentials.agent_api_key, SCRIPTS_DIR=str(REPO_ROOT / "scripts"),
                     MANIFEST_PATH=str(manifest), SPOOL_DIR=str(data_dir / "agent-spool"),
                     HEARTBEAT_INTERVAL=DEV_HEARTBEAT_INTERVAL)
    agent_env.setdefault("AGENT_TAGS", DEV_AGENT_TAGS)
    if not env.get("AGENT_PORT"):
        free = port_is_free("0.0.0.0", DEFAULT_AGENT_PORT)
        agent_env["AGENT_PORT"] = str(DEFAULT_AGENT_PORT if free else 0)
    argv = console_script("scriptmesh-agent", ["-m", "agent"])
    return ChildProcess("agent", [*argv, "start"], agent_env, console)


def hub_app_target() -> str:
    """``wsgi:app`` from the checkout; the factory when running from an installed package."""
    return "wsgi:app" if (REPO_ROOT / "wsgi.py").exists() else "orchestrator:create_app()"


def console_script(name: str, module_fallback: list[str]) -> list[str]:
    """The console script next to this Python (same venv), else ``python -m <module>``."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, *module_fallback]


def wait_until_healthy(url: str, hub: ChildProcess, requested: StopRequested) -> bool:
    """Poll ``/health`` until it answers 200, the hub dies, a signal arrives, or time runs out."""
    deadline = time.monotonic() + HUB_START_TIMEOUT
    while time.monotonic() < deadline and not requested.stop and hub.exit_code() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(WATCH_INTERVAL)
    return False


def banner(url: str, credentials: DevCredentials, options: DevOptions,
           env: dict[str, str]) -> str:
    """The start-up summary: where the hub is, how to log in, a TOKEN line to paste."""
    agent = LOCAL_AGENT_NAME if options.start_agent else "not started (--no-agent)"
    return (
        "\n"
        "ScriptMesh is running.\n\n"
        f"  URL:       {url}\n"
        f"  Dashboard: {url}/ui/  (sign in with the Email and Password below)\n"
        f"  API docs:  {url}/docs\n"
        f"  Email:     {credentials.email}\n"
        f"  Password:  {credentials.password}\n"
        f"  API key:   {credentials.operator_api_key}  (operator scope, for curl)\n"
        f"  Agent:     {agent}\n"
        f"  Data dir:  {env['SCRIPTMESH_DATA_DIR']}  (credentials in dev-credentials.json)\n\n"
        "Paste this into your shell to use the API:\n\n"
        f"  export TOKEN={credentials.operator_api_key}\n"
        f"  curl -s {url}/agents -H \"Authorization: Bearer $TOKEN\"\n\n"
        "Press Ctrl-C to stop.\n\n"
    )


def local_url(host: str, port: int) -> str:
    """The URL to reach the hub from this machine (a wildcard bind means localhost)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def port_is_free(host: str, port: int) -> bool:
    """True if a listener could bind ``host:port`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
