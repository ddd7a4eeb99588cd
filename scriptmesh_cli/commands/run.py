"""``scriptmesh run``: run a script (or flow) on one agent, stream its output, exit with its code.

Exit codes: the script's own; 124 timeout; 130 cancelled (Ctrl-C cancels the
job, a second Ctrl-C detaches and leaves it running); 255 when it was lost,
expired or failed to start; 1 for a failed flow.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from scriptmesh_cli.commands import hub, key_values
from scriptmesh_cli.follow import Follower, print_output
from scriptmesh_cli.render import print_json

EXIT_TIMEOUT = 124
EXIT_CANCELLED = 130
EXIT_LOST = 255


def register(group: click.Group) -> None:
    group.add_command(run_command)


def exit_code_of(job: dict[str, Any]) -> int:
    """The process exit code that reports ``job``'s outcome (see the module docstring)."""
    status, code = job.get("status"), job.get("exit_code")
    if status == "success":
        return 0 if code is None else code
    if status == "timeout":
        return EXIT_TIMEOUT
    if status == "cancelled":
        return EXIT_CANCELLED
    if status == "failed" and code is not None and code != 0:
        return code
    if status == "failed" and job.get("kind") == "flow" and not job.get("error"):
        return 1
    return EXIT_LOST


def notice(message: str) -> None:
    """A note for the person at the terminal (stderr, so stdout stays the script's)."""
    click.echo(message, err=True)


def write(stream: Any) -> Any:
    def emit(text: str) -> None:
        stream.write(text)
        stream.flush()
    return emit


def follow_until_end(job_id: str, *, quiet: bool = False,
                     cancel_on_interrupt: bool = True) -> dict[str, Any]:
    """Stream the job's output until it ends; the first Ctrl-C cancels it (unless
    ``cancel_on_interrupt`` is false), the next one detaches.

    Returns the finished job (``GET /jobs/{id}``).
    """
    client = hub()
    follower = Follower(client, job_id)
    out, err = write(sys.stdout), write(sys.stderr)
    interrupts = 0
    while follower.end is None:
        try:
            for event in follower.events():
                if not quiet:
                    print_output(event, out, err)
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts > 1 or not cancel_on_interrupt:
                notice(f"Detached; job {job_id} keeps running "
                       f"(follow it with `scriptmesh logs -f {job_id}`).")
                sys.exit(EXIT_CANCELLED)
            cancel_job(job_id)
    return client.get(f"/jobs/{job_id}")


def cancel_job(job_id: str) -> None:
    """Ask the hub to cancel (Ctrl-C); a job that already ended is left as it is."""
    from scriptmesh_cli.client import HubError

    notice(f"Cancelling job {job_id} (Ctrl-C again to detach)...")
    try:
        hub().post(f"/jobs/{job_id}/cancel")
    except HubError as exc:
        if exc.code != "job_finished":
            raise


@click.command("run")
@click.argument("agent")
@click.argument("script", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A script param (repeatable); reaches the script as an env variable.")
@click.option("--flow", default=None, help="Run this flow of the agent instead of a script.")
@click.option("-v", "--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="A flow variable (repeatable).")
@click.option("--timeout", type=click.IntRange(1), default=None,
              help="Seconds before the agent kills it (exit 124) [hub default: 300].")
@click.option("--detach", is_flag=True, help="Print the job id and return at once.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the finished job's JSON instead of streaming its output.")
def run_command(agent: str, script: str | None, params: tuple[str, ...], flow: str | None,
                variables: tuple[str, ...], timeout: int | None, detach: bool,
                as_json: bool) -> None:
    """Run SCRIPT (or --flow NAME) on AGENT, stream its output, exit with its exit code.

    Ctrl-C cancels the job; a second Ctrl-C detaches and leaves it running.
    Exit codes: the script's, 124 timeout, 130 cancelled, 255 lost or not started.
    """
    if bool(script) == bool(flow):
        raise click.UsageError("Give a SCRIPT or --flow NAME (not both).")
    body: dict[str, Any] = {"agent": agent}
    if flow:
        body.update(run_flow=flow, variables=key_values(variables, "-v"))
    else:
        body.update(run_script=script, params=key_values(params, "-p"))
    if timeout:
        body["timeout"] = timeout
    created = hub().post("/trigger-script", body)
    job_id = created["job_id"]
    if detach:
        if as_json:
            print_json(created)  # the API's own answer: {"job_id", "status"}
        else:
            click.echo(job_id)
        return
    if sys.stderr.isatty():
        notice(f"job {job_id} on {agent}")
    job = follow_until_end(job_id, quiet=as_json)
    if as_json:
        print_json(job)
    elif job.get("status") != "success":
        notice(f"job {job_id} {job.get('status')}"
               + (f" (exit {job['exit_code']})" if job.get("exit_code") is not None else "")
               + (f": {job['error']}" if job.get("error") else ""))
    sys.exit(exit_code_of(job))
