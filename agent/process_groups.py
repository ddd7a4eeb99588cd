"""The record of running scripts' process groups, so none outlives the agent that started it.

Each script runs in its own process group. Its direct child dies with the
agent (``PR_SET_PDEATHSIG``), but its own children would not; so every group
is written to ``<spool dir>/process-groups/<pgid>.json`` while it runs (job id
and the leader's start time). Whatever is still recorded when the agent is
gone is killed: by the reaper process watching the agent (``agent.reaper``,
at once) and by the next agent start (:meth:`GroupRecord.kill_leftovers`).

A recorded group is only killed while it is provably still ours: a pgid is
never reused while any process of the group lives, so members of the group
whose leader is gone are the script's descendants; a live leader must have the
recorded start time (else the pid was reused for a new group).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GROUPS_DIR = "process-groups"
_PR_SET_PDEATHSIG = 1
try:  # resolved before any fork: a forked child must not dlopen
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None


def parent_death_signal(signum: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``signum`` when the thread that started it dies
    (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing)."""
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signum))
    return preexec


#: Scripts are killed outright with the agent that started them.
die_with_parent = parent_death_signal(signal.SIGKILL)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: gone, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``, found through ``/proc``."""
    members = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


@dataclass(frozen=True)
class Leftover:
    """A recorded group found alive after its agent was gone, and killed."""

    pgid: int
    job_id: str | None
    processes: int


class GroupRecord:
    """Running script groups, one small file each under ``<state dir>/process-groups``."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.directory = Path(state_dir) / GROUPS_DIR

    def _path(self, pgid: int) -> Path:
        return self.directory / f"{pgid}.json"

    def record(self, pgid: int, job_id: str | None) -> None:
        """Write down a just-started group (its leader is ``pgid``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {"pgid": pgid, "job_id": job_id, "start_time": start_time(pgid)}
        temporary = self.directory / f".{pgid}.tmp"
        temporary.write_text(json.dumps(entry))
        temporary.replace(self._path(pgid))

    def forget(self, pgid: int) -> None:
        self._path(pgid).unlink(missing_ok=True)

    def entries(self) -> list[dict[str, object]]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found

    def kill_leftovers(self) -> list[Leftover]:
        """SIGKILL every recorded group that is still ours and alive; clear the record."""
        killed = []
        for entry in self.entries():
            pgid = int(entry["pgid"])  # type: ignore[call-overload]
            members = group_members(pgid)
            leader_start = start_time(pgid)
            reused = leader_start is not None and leader_start != entry.get("start_time")
            if members and not reused:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                killed.append(Leftover(pgid, entry.get("job_id"), len(members)))  # type: ignore[arg-type]
            self.forget(pgid)
        return killed


#: The record every ScriptProcess writes to; the daemon sets it at start (None: no record).
current: GroupRecord | None = None


def use_record(record: GroupRecord | None) -> None:
    """Make ``record`` the one new script processes are written to."""
    global current
    current = record
