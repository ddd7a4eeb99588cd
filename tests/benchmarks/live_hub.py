"""A live hub for benchmarks: its own Redis, a migrated database, an admin key, gunicorn.

Everything is bootstrapped through the ``scriptmesh`` command line, as an
operator would, so the benchmark process itself never builds an app.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GUNICORN_CONF = REPO / "orchestrator" / "gunicorn_conf.py"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveHub:
    """``start()`` brings the hub up in ``data_dir``; ``stop()`` takes everything down."""

    def __init__(self, data_dir: Path, database_url: str | None = None,
                 poll_wait: float = 25.0, workers: int = 2) -> None:
        self.data_dir = data_dir
        self.database_url = database_url or f"sqlite:///{data_dir / 'scriptmesh.db'}"
        self.database_kind = "PostgreSQL" if database_url else "SQLite"
        self.poll_wait = poll_wait
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = ""
        self._redis = None
        self._hub: subprocess.Popen[bytes] | None = None
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._log = data_dir / "hub.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SCRIPTMESH_ENV": "production", "SCRIPTMESH_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
            "SECRET_KEY": self._secrets["SECRET_KEY"], "JWT_SECRET": self._secrets["JWT"],
            "ENCRYPTION_KEY": self._secrets["ENCRYPTION_KEY"], "POLL_WAIT": str(self.poll_wait),
            "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers),
            "LOG_LEVEL": "warning", "PYTHONPATH": str(REPO),
        })
        if os.environ.get("BENCH_GUNICORN_ARGS"):  # e.g. an access log with request times
            env["GUNICORN_CMD_ARGS"] = os.environ["BENCH_GUNICORN_ARGS"]
        return env

    def start(self) -> None:
        from orchestrator.embedded_redis import start_embedded_redis

        self._secrets = {name: secrets.token_urlsafe(48)
                         for name in ("SECRET_KEY", "JWT", "ENCRYPTION_KEY")}
        self._redis, self.redis_url = start_embedded_redis(self.data_dir / "redis")
        env = self.env()
        self._cli(env, "db", "upgrade")
        email, password = "bench@bench.example", secrets.token_urlsafe(16)
        self._cli(env, "users", "create", "--email", email, "--password", password)
        self.admin_key = self._cli(env, "api-keys", "create", "--email", email, "--name",
                                   "bench", "--scope", "admin").strip().splitlines()[-1]
        log = open(self._log, "wb")  # noqa: SIM115 - the child writes to it until stop()
        self._hub = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "wsgi:app"],
            env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_healthy()
        # Upkeep as in production: requeues leases an overloaded client never acknowledged.
        self._scheduler = subprocess.Popen(
            [str(BIN / "scriptmesh"), "scheduler"], env=env, cwd=str(REPO), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def _cli(self, env: dict[str, str], *args: str) -> str:
        done = subprocess.run([str(BIN / "scriptmesh"), *args], env=env, cwd=str(REPO),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"scriptmesh {' '.join(args[:2])} failed:\n{done.stderr}")
        return done.stdout

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._hub is not None and self._hub.poll() is not None:
                raise RuntimeError(f"the hub exited:\n{self._log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the hub did not become healthy:\n{self._log.read_text()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the hub's log (for a failed run)."""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the hub's and scheduler's process groups, SIGKILL what is left, then
        stop Redis."""
        for process in (self._scheduler, self._hub):
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._redis is not None:
            from orchestrator.embedded_redis import stop_embedded_redis

            stop_embedded_redis(self._redis)
            self._redis = None
        if os.environ.get("BENCH_KEEP_LOG"):
            import shutil
            shutil.copy(self._log, os.environ["BENCH_KEEP_LOG"])
