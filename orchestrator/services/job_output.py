"""Live job output: follow a job's stdout, stderr, flow steps and end as Server-Sent Events.

Whoever appends output, applies step events or changes a job's status calls
``job_changes.announce(job_id)`` after its commit: one Redis ``PUBLISH`` on a single
channel, so a follower on any hub replica wakes whichever replica took the
upload. Each hub process keeps ONE subscription (``OutputListener``, a daemon
thread - a greenlet under gunicorn's gevent worker) that wakes the local
followers of the announced job; a follower is an ``Event`` in a dict, so many
of them cost little. A follower holds no database connection while it waits:
it reads what is new in a short session, removes the session, then blocks.
A missed announcement (Redis restart) only delays a follower until its next
keepalive, when it reads the database again anyway.

The event ``id`` is the resume cursor ``<stdout_len>:<stderr_len>[:<step_seq>]``
(character counts after the chunk; ``step_seq`` the highest flow-event seq
sent); ``Last-Event-ID`` or ``?after=`` with it resumes with no gap and no
duplicate.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app

from orchestrator.errors import ValidationFailed
from orchestrator.extensions import db, redis_store
from orchestrator.models import Job, JobStep
from orchestrator.schemas.job_steps import JobStepSchema
from orchestrator.services.job_changes import CHANNEL
from orchestrator.services.jobs import get_job

log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE_SECONDS = 15.0
#: ``GET /jobs/{id}?wait=S`` waits at most this long.
MAX_WAIT_SECONDS = 60.0
#: The most characters of one stream sent in one ``output`` event.
MAX_CHUNK_CHARS = 64 * 1024
RECONNECT_DELAY = 1.0
EXTENSION_KEY = "scriptmesh.job_output"


class OutputListener:
    """One Redis subscription per hub process, fanning announcements out to local waiters."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.lock = threading.Lock()
        self.waiters: dict[str, set[threading.Event]] = {}
        self.thread: threading.Thread | None = None

    def register(self, job_id: str) -> threading.Event:
        """A fresh event set whenever ``job_id`` is announced (register before reading)."""
        event = threading.Event()
        with self.lock:
            self.waiters.setdefault(job_id, set()).add(event)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="job-output-listener",
                                               daemon=True)
                self.thread.start()
        return event

    def discard(self, job_id: str, event: threading.Event) -> None:
        with self.lock:
            events = self.waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self.waiters[job_id]

    def _wake(self, job_id: str | None) -> None:
        with self.lock:
            events = (list(self.waiters.get(job_id, ())) if job_id is not None
                      else [e for group in self.waiters.values() for e in group])
        for event in events:
            event.set()

    def _run(self) -> None:
        while True:
            try:
                pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self._wake(None)  # anything announced before we (re)subscribed
                for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake(message["data"].decode())
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("job output listener reconnecting: %s", type(exc).__name__)
                self._wake(None)
                time.sleep(RECONNECT_DELAY)


def listener() -> OutputListener:
    """The current app's listener (made on first use)."""
    extensions = current_app.extensions
    if EXTENSION_KEY not in extensions:
        extensions[EXTENSION_KEY] = OutputListener(redis_store.connection)
    return extensions[EXTENSION_KEY]


@dataclass
class Cursor:
    """Where a follower is: characters of stdout and stderr sent, highest step seq sent."""

    stdout: int = 0
    stderr: int = 0
    steps: int = 0

    @classmethod
    def parse(cls, value: str | None) -> Cursor:
        """``"12:0"`` or ``"12:0:3"``; 422 ``validation_error`` for anything else."""
        if not value:
            return cls()
        parts = value.strip().split(":")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3) or min(numbers) < 0:
            raise ValidationFailed("Invalid resume cursor.", details={"fields": {"after": [
                "Pass an event id as sent: <stdout_len>:<stderr_len>[:<step_seq>]."]}})
        return cls(*numbers)

    def event_id(self, with_steps: bool) -> str:
        base = f"{self.stdout}:{self.stderr}"
        return f"{base}:{self.steps}" if with_steps else base


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One Server-Sent Event (``data`` as one JSON line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def output_text(job_id: str, stream: str) -> str:
    """The output of ``stream`` so far (404 ``job_not_found``)."""
    return getattr(get_job(job_id), stream) or ""


def _release_session() -> None:
    db.session.commit()
    db.session.remove()


def _read_new(job_id: str, cursor: Cursor, is_flow: bool) -> tuple[list[str], Job | None]:
    """The events for what is new since ``cursor`` (advancing it) and the job row."""
    job = db.session.get(Job, job_id, populate_existing=True)
    events: list[str] = []
    for stream in ("stdout", "stderr"):
        column = getattr(Job, stream)
        start = getattr(cursor, stream)
        text = db.session.execute(
            sa.select(sa.func.substr(column, start + 1)).where(Job.id == job_id)
        ).scalar_one_or_none() or ""
        for at in range(0, len(text), MAX_CHUNK_CHARS):
            chunk = text[at:at + MAX_CHUNK_CHARS]
            setattr(cursor, stream, start + at + len(chunk))
            events.append(sse("output", {"stream": stream, "offset": start + at, "data": chunk},
                              cursor.event_id(is_flow)))
    if is_flow:
        events.extend(_step_events(job_id, cursor))
    return events, job


def _step_events(job_id: str, cursor: Cursor) -> list[str]:
    schema = JobStepSchema()
    rows = db.session.execute(
        db.select(JobStep).where(JobStep.job_id == job_id, JobStep.last_seq > cursor.steps)
        .order_by(JobStep.last_seq)).scalars()
    events = []
    for row in rows:
        cursor.steps = row.last_seq
        events.append(sse("step", schema.dump(row), cursor.event_id(True)))
    return events


def end_event(job: Job) -> str:
    return sse("end", {"status": job.status, "exit_code": job.exit_code, "error": job.error,
                       "duration_ms": job.duration_ms})


def follow(job_id: str, after: str | None,
           keepalive: float = DEFAULT_KEEPALIVE_SECONDS) -> Iterator[str]:
    """The job's live output as SSE text, from ``after`` until it ends.

    Checks the job exists (404) before the first byte; every later read runs in a
    short session released before the follower blocks.
    """
    cursor = Cursor.parse(after)
    job = get_job(job_id)
    is_flow = job.kind == "flow"
    _release_session()
    waiter = listener().register(job_id)
    return _stream(job_id, cursor, is_flow, waiter, keepalive)


def _stream(job_id: str, cursor: Cursor, is_flow: bool, waiter: threading.Event,
            keepalive: float) -> Iterator[str]:
    status = None
    try:
        while True:
            waiter.clear()
            events, job = _read_new(job_id, cursor, is_flow)
            current = job.status if job is not None else None
            ending = end_event(job) if job is not None and job.is_terminal else None
            _release_session()
            yield from events
            if current is not None and current != status:
                status = current
                yield sse("status", {"status": current})
            if job is None or ending:
                if ending:
                    yield ending
                return
            if not waiter.wait(keepalive):
                yield ": keepalive\n\n"
    finally:
        listener().discard(job_id, waiter)


def wait_for_job(job_id: str, wait: float) -> Job:
    """The job once it is terminal or ``wait`` seconds passed (no DB connection held)."""
    job = get_job(job_id)
    if job.is_terminal:
        return job
    waiter = listener().register(job_id)
    try:
        deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
        while True:
            waiter.clear()
            job = get_job(job_id)
            db.session.refresh(job)
            remaining = deadline - time.monotonic()
            if job.is_terminal or remaining <= 0:
                return job
            _release_session()
            waiter.wait(remaining)
    finally:
        listener().discard(job_id, waiter)
