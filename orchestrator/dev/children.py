"""Child processes of ``scriptmesh dev``: started in their own group, output prefixed, stopped.

Each child gets its own process group (so a Ctrl-C in the terminal reaches
only the supervisor, which then stops the children in order) and is stopped
with SIGTERM to the group, a grace period, then SIGKILL; ESRCH means gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from orchestrator.embedded_redis import die_with_parent

#: How long ``wait`` sleeps between checks, so a second Ctrl-C is noticed quickly.
WAIT_SLICE = 0.1


class Console:
    """Writes whole lines to stdout, one writer at a time, each prefixed with a name."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self._lock:
            self.stream.write(f"[{name}] {text}\n")
            self.stream.flush()

    def block(self, text: str) -> None:
        """Several lines at once, unprefixed (the start-up banner)."""
        with self._lock:
            self.stream.write(text)
            self.stream.flush()


class ChildProcess:
    """One supervised program: ``argv`` run with ``env``, its output relayed to ``console``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 console: Console, cwd: str | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.console = console
        self.process: subprocess.Popen[bytes] | None = None
        self._relay: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Spawn the child in a new session (and so a new process group).

        It gets SIGTERM if the supervisor dies (even of SIGKILL), so nothing
        of a dev stack runs on unnoticed.
        """
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only
        )
        self._relay = threading.Thread(target=self._relay_output, name=f"relay-{self.name}",
                                       daemon=True)
        self._relay.start()
        self.console.line("dev", f"started {self.name} (pid {self.process.pid})")

    def exit_code(self) -> int | None:
        """None while running, else the exit status (negative: killed by that signal)."""
        return self.process.poll() if self.process else None

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group; a vanished group is fine."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def wait(self, deadline: float, force: Callable[[], bool] = lambda: False) -> bool:
        """Wait in short slices until the child exits, ``deadline`` passes or ``force()``."""
        while self.exit_code() is None:
            if time.monotonic() >= deadline or force():
                return False
            time.sleep(WAIT_SLICE)
        return True

    def kill(self) -> None:
        """SIGKILL the group and reap the child."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def finish_output(self, timeout: float = 2.0) -> None:
        """Let the relay print the child's last lines."""
        if self._relay is not None:
            self._relay.join(timeout)

    def _relay_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.console.line(self.name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.process.stdout.close()


def stop_children(children: Sequence[ChildProcess], grace: float,
                  force: Callable[[], bool] = lambda: False) -> None:
    """SIGTERM every running child, wait up to ``grace`` seconds, SIGKILL the rest."""
    running = [child for child in children if child.exit_code() is None]
    for child in running:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in running:
        if not child.wait(deadline, force):
            child.console.line("dev", f"{child.name} did not stop in time: killing it")
            child.kill()
        # Whatever the child left in its group (e.g. gunicorn workers) goes with it.
        child.signal_group(signal.SIGKILL)
        child.finish_output()
