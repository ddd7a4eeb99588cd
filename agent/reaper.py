"""The reaper: a tiny process that kills an agent's script groups the moment the agent is gone.

``python -m agent.reaper <state dir>`` is started by the agent in its own
session with a pipe on stdin; it blocks reading it. The agent never writes,
so end-of-file means the agent exited, however it died (even ``kill -9``):
the reaper then kills every group still in the agent's record
(``agent.process_groups``) and exits.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import IO

from agent.process_groups import GroupRecord

#: What the reaper killed, appended in the record's directory (it has no terminal).
REAPER_LOG = "reaper.log"


def watch(stdin: IO[bytes], state_dir: str) -> int:
    """Block until ``stdin`` closes, then kill the recorded groups; return how many."""
    while stdin.read(4096):
        pass
    record = GroupRecord(state_dir)
    killed = record.kill_leftovers()
    if killed:
        with open(record.directory / REAPER_LOG, "a") as log:
            for leftover in killed:
                log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} agent gone: killed process "
                          f"group {leftover.pgid} of job {leftover.job_id}\n")
    return len(killed)


def start_reaper(state_dir: str) -> subprocess.Popen[bytes]:
    """Start the reaper for ``state_dir``; keep the returned object (its stdin) until exit."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "agent.reaper", state_dir], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        close_fds=True)


def main() -> None:
    watch(sys.stdin.buffer, sys.argv[1])


if __name__ == "__main__":
    main()
