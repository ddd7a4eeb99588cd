"""Child processes: spawn without a shell in their own group, capture output, kill the group.

A script's direct child dies with the agent (``PR_SET_PDEATHSIG``) and its
group is recorded while it runs (``agent.process_groups``), so no part of it
outlives the agent.
"""

from __future__ import annotations

import codecs
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from agent import process_groups

READ_CHUNK = 65536
TRUNCATION_MARKER = "\n[... scriptmesh: {dropped} bytes of output truncated ...]\n"


class CappedBuffer:
    """Capture one output stream, keeping at most ``cap`` bytes: the head and tail halves.

    While nothing has been dropped the decoded text is also available for live
    streaming by character offset (:meth:`read_live`); once the cap is exceeded
    live streaming stops growing and the final :meth:`text` carries head,
    a marker line and tail.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._half = max(cap // 2, 1)
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0
        self._live: list[str] = []
        self._live_len = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Append raw bytes read from the child."""
        with self._lock:
            self._total += len(chunk)
            if self._total <= self.cap:
                text = self._decoder.decode(chunk)
                self._live.append(text)
                self._live_len += len(text)
            room = self._half - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            self._tail += chunk
            if len(self._tail) > 2 * self._half:
                del self._tail[: len(self._tail) - self._half]

    @property
    def truncated(self) -> bool:
        """True when more than ``cap`` bytes were produced."""
        return self._total > self.cap

    def read_live(self, offset: int) -> str:
        """Return decoded text from character ``offset`` (only the untruncated prefix)."""
        with self._lock:
            if offset >= self._live_len:
                return ""
            self._live = ["".join(self._live)]
            return self._live[0][offset:]

    def text(self) -> str:
        """Return the captured output, with a marker line where the middle was dropped."""
        with self._lock:
            if self._total <= self.cap:
                return bytes(self._head + self._tail).decode("utf-8", errors="replace")
            tail = bytes(self._tail[-self._half :])
            dropped = self._total - len(self._head) - len(tail)
            head = bytes(self._head).decode("utf-8", errors="replace")
            marker = TRUNCATION_MARKER.format(dropped=dropped)
            return head + marker + tail.decode("utf-8", errors="replace")


def _pump(stream: IO[bytes], buffer: CappedBuffer) -> None:
    try:
        while chunk := stream.read1(READ_CHUNK):  # type: ignore[attr-defined]
            buffer.feed(chunk)
    except (OSError, ValueError):
        pass  # the pipe was closed under us: nothing more to read
    finally:
        stream.close()


def _live_members_from_proc(pgid: int) -> bool | None:
    """Scan ``/proc`` for a non-zombie process in group ``pgid`` (None when /proc is absent)."""
    if not os.path.isdir("/proc/self"):
        return None
    return bool(process_groups.group_members(pgid))


def group_alive(pgid: int) -> bool:
    """Return True while a running (non-zombie) process is left in group ``pgid``.

    Zombies are ignored where ``/proc`` allows it: an orphan waiting to be
    reaped by PID 1 is already dead and must not hold up the kill sequence.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    live = _live_members_from_proc(pgid)
    return True if live is None else live


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to the process group; a group that is already gone (ESRCH) is fine."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


class ScriptProcess:
    """A running script: its own session and process group, stdin closed, output captured."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        output_cap: int,
    ) -> None:
        self.stdout = CappedBuffer(output_cap)
        self.stderr = CappedBuffer(output_cap)
        self.proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            preexec_fn=process_groups.die_with_parent,  # noqa: PLW1509 - prctl only
        )
        self.pid = self.proc.pid
        self._record = process_groups.current
        if self._record is not None:
            self._record.record(self.pid, env.get("SCRIPTMESH_JOB_ID"))
        self._readers = [
            threading.Thread(target=_pump, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def poll(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the main process; return its exit code or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_process_group(self, grace: float) -> int:
        """SIGTERM the whole group, wait ``grace`` seconds, then SIGKILL what is left."""
        signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not group_alive(self.pid):
                break
            time.sleep(0.05)
        else:
            signal_group(self.pid, signal.SIGKILL)
        return self.proc.wait()

    def finish_output(self, linger: float = 2.0) -> None:
        """Collect the rest of the output after the main process exited.

        A leftover background child that still holds the pipes would block the
        readers for ever, so after ``linger`` seconds the group is killed.
        """
        for reader in self._readers:
            reader.join(linger)
        if any(reader.is_alive() for reader in self._readers):
            signal_group(self.pid, signal.SIGKILL)
            for reader in self._readers:
                reader.join(5.0)
        self.proc.poll()
        if self._record is not None and not group_alive(self.pid):
            self._record.forget(self.pid)  # a stray member keeps it recorded: killed at exit
