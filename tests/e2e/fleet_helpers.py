"""Helpers for the fleet e2e tests: a script that stamps its own start and end times."""

from __future__ import annotations

import os
from typing import Any

from tests.e2e.conftest import AgentProc

#: Prints its own start and end instants (epoch seconds) around a sleep.
STAMP = ('#!/usr/bin/env bash\necho "start $(date +%s.%N)"\nsleep "${seconds:-1}"\n'
         'echo "end $(date +%s.%N)"\n')


def add_stamp_scripts(agent: AgentProc, **locks: str) -> None:
    """Give ``agent`` ``stamp.sh`` and, per ``name=lock``, an entry with a default lock."""
    path = agent.scripts_dir / "stamp.sh"
    path.write_text(STAMP)
    os.chmod(path, 0o755)
    manifest = agent.manifest()
    seconds = [{"name": "seconds", "type": "number"}]
    manifest["scripts"].append({"name": "stamp.sh", "path": "stamp.sh", "params": seconds})
    for name, lock in locks.items():
        manifest["scripts"].append({"name": f"{name}.sh", "path": "stamp.sh", "lock": lock,
                                    "params": seconds})
    agent.write_manifest(manifest)


def interval(job: dict[str, Any]) -> tuple[float, float]:
    """The (start, end) the script itself printed."""
    stamps = dict(line.split() for line in job["stdout"].splitlines()
                  if line.startswith(("start ", "end ")))
    return float(stamps["start"]), float(stamps["end"])


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most
