"""``scriptmesh jobs list|show|wait|cancel`` and ``scriptmesh logs JOB [-f]``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from scriptmesh_cli.commands import hub
from scriptmesh_cli.commands.run import exit_code_of, follow_until_end, notice
from scriptmesh_cli.render import (
    json_option,
    print_fields,
    print_json,
    print_table,
    short_time,
    styled,
)

#: ``jobs wait`` long-polls in slices of this many seconds (the hub's maximum).
WAIT_SLICE = 60


def register(group: click.Group) -> None:
    group.add_command(jobs_group)
    group.add_command(logs_command)


@click.group("jobs")
def jobs_group() -> None:
    """List, show, wait for and cancel jobs."""


@jobs_group.command("list")
@click.option("--agent", default=None)
@click.option("--status", default=None,
              type=click.Choice(["pending", "running", "success", "failed", "timeout",
                                 "cancelled", "expired"]))
@click.option("--script", default=None)
@click.option("--fanout", "fanout_id", default=None, help="Only the jobs of this fan-out.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
def list_jobs(agent: str | None, status: str | None, script: str | None,
              fanout_id: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs, with filters."""
    page = hub().get("/jobs", agent=agent, status=status, script=script, fanout_id=fanout_id,
                     limit=limit)
    if as_json:
        print_json(page)
        return
    print_table(("JOB", "AGENT", "SCRIPT", "STATUS", "EXIT", "CREATED", "MS"), (
        (j["job_id"], j.get("agent"), j.get("script"), styled(j.get("status")),
         j.get("exit_code"), short_time(j.get("created_at")), j.get("duration_ms"))
        for j in page["jobs"]))


@jobs_group.command("show")
@click.argument("job_id")
@json_option
def show_job(job_id: str, as_json: bool) -> None:
    """One job: its status, exit code and output."""
    job = hub().get(f"/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    show(job)


def show(job: dict[str, Any]) -> None:
    print_fields((("job", job["job_id"]), ("agent", job.get("agent")),
                  (job.get("kind") or "script", job.get("flow") or job.get("script")),
                  ("status", job.get("status")), ("exit code", job.get("exit_code")),
                  ("error", job.get("error")), ("params", job.get("params")),
                  ("created", short_time(job.get("created_at"))),
                  ("duration", f"{job['duration_ms']} ms" if job.get("duration_ms") is not None
                   else None), ("fanout", job.get("fanout_id"))))
    for stream in ("stdout", "stderr"):
        if job.get(stream):
            click.echo(f"--- {stream}")
            click.echo(job[stream], nl=not job[stream].endswith("\n"))


@jobs_group.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=click.FloatRange(0), default=None,
              help="Give up after this many seconds (exit 124) [default: wait for the end].")
@json_option
def wait_job(job_id: str, timeout: float | None, as_json: bool) -> None:
    """Wait until a job ends; exit with its exit code (like `scriptmesh run`)."""
    client = hub()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        job = client.get(f"/jobs/{job_id}", wait=max(left, 0.1))
        if job["status"] not in ("pending", "running"):
            break
        if deadline is not None and time.monotonic() >= deadline:
            notice(f"job {job_id} still {job['status']} after {timeout:g}s")
            sys.exit(124)
    if as_json:
        print_json(job)
    else:
        click.echo(f"{job_id} {job['status']}"
                   + (f" (exit {job['exit_code']})" if job.get("exit_code") is not None else ""))
    sys.exit(exit_code_of(job))


@jobs_group.command("cancel")
@click.argument("job_id")
@json_option
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a job: at once when pending; a running one is killed by its agent."""
    job = hub().post(f"/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    else:
        click.echo(f"{job_id} {'cancelled' if job['status'] == 'cancelled' else 'cancelling'}")


@click.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Stream until the job ends.")
@click.option("--stderr", "stderr", is_flag=True,
              help="Without -f: print stderr instead of stdout.")
def logs_command(job_id: str, follow: bool, stderr: bool) -> None:
    """Print a job's output; with -f follow it live (resuming if the connection drops).

    Ctrl-C stops following; the job keeps running.
    """
    if not follow:
        text = hub().send("GET", f"/jobs/{job_id}/logs",
                          params={"stream": "stderr" if stderr else "stdout"}).text
        sys.stdout.write(text)
        return
    job = follow_until_end(job_id, cancel_on_interrupt=False)
    sys.exit(exit_code_of(job))
