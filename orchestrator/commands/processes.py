"""``scriptmesh dev``, ``worker`` and ``scheduler``: the hub's long-running processes."""

from __future__ import annotations

import sys

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the ``scriptmesh`` group."""
    # Each command builds its own app: ``dev`` must start Redis before any app
    # exists, and the others own their process's single app.
    group.command("dev", with_appcontext=False)(dev)
    group.command("worker", with_appcontext=False)(worker)
    group.command("scheduler", with_appcontext=False)(scheduler)


@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the hub's HTTP API.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface the hub listens on (0.0.0.0 to reach it from other machines).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Where the database, Redis data, secrets and dev credentials live "
                   "[env SCRIPTMESH_DATA_DIR, ./instance].")
@click.option("--no-agent", is_flag=True, help="Do not start the local agent.")
def dev(port: int, host: str, data_dir: str | None, no_agent: bool) -> None:
    """Run everything on this machine: Redis, hub, worker, scheduler and a local agent.

    Ctrl-C stops it all; the data dir keeps users, keys, jobs and queues for the
    next start.
    """
    from orchestrator.dev.supervisor import DevOptions, run_dev

    sys.exit(run_dev(DevOptions(port=port, host=host, data_dir=data_dir,
                                start_agent=not no_agent)))


@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker on the background queue (webhooks, notifications)."""
    from orchestrator.worker import run_worker

    run_worker(burst=burst)


def scheduler() -> None:
    """Run periodic upkeep; with several schedulers, only the Redis-elected leader works."""
    from orchestrator.scheduler import run_scheduler

    run_scheduler()
