"""A fan-out's progress: releasing held jobs, stopping on errors or a failed canary, finishing.

``on_fanout_job_finished`` runs in the transaction that makes one of the
fan-out's jobs terminal (``completion.on_job_finished``). Only a fan-out with
rules (a window, an error limit, canary stages, a stop) needs a decision per
job: for those it locks the fan-out row (``SELECT ... FOR UPDATE``; SQLite
serialises writers anyway) as the transaction's last step, so however many
hub replicas and workers finish jobs at once, each decision is taken by one of
them against committed counts: a window slot is filled once, the error limit
trips once.

Completion never needs that lock on the hot path. Every finishing transaction
parks its fan-out id; once it has committed, ``settle_finished_fanouts`` (run
by ``dispatch.notify_finished``, which every finisher calls after its commit)
looks in a new transaction for an open job and, only when there is none, takes
the lock, checks again and records ``fanout.completed`` (once). Whichever of
two concurrent last finishers commits second sees both commits, so a fan-out
is always completed; a 1,000-agent fan-out no longer queues 1,000 result
transactions (and their pooled connections) behind one row lock.

While holding the fan-out lock, jobs are only taken with ``SKIP LOCKED``: a
job locked by someone else is being finished (or started) by them, and
waiting for it could deadlock with its finisher, who waits for our lock.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from orchestrator.errors import NotFound
from orchestrator.extensions import db
from orchestrator.models import (
    TERMINAL_STATUSES,
    Fanout,
    FanoutStatus,
    Job,
    JobStatus,
    StopReason,
    utcnow,
)
from orchestrator.services import fanout_queue
from orchestrator.services.events import record_event

OPEN_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
#: Statuses that count against ``max_errors`` (a user's cancel is not an error).
ERROR_STATUSES = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value, JobStatus.EXPIRED.value)
#: Session flag: fan-outs whose jobs this transaction is finishing itself.
BULK_KEY = "scriptmesh.fanout_bulk"
#: Session info: fan-outs this transaction finished jobs of / whose finishers committed.
SETTLE_KEY = "scriptmesh.fanout_settle"
SETTLE_READY_KEY = "scriptmesh.fanout_settle_ready"


@dataclass(frozen=True)
class Tally:
    """The fan-out's jobs counted by (stage, held, status)."""

    counts: Counter[tuple[int, bool, str]]

    @classmethod
    def load(cls, fanout_id: str) -> Tally:
        rows = db.session.execute(
            sa.select(Job.fanout_stage, Job.held, Job.status, sa.func.count())
            .where(Job.fanout_id == fanout_id)
            .group_by(Job.fanout_stage, Job.held, Job.status)).all()
        return cls(Counter({(stage or 0, bool(held), status): n
                            for stage, held, status, n in rows}))

    def count(self, *, stage: int | None = None, held: bool | None = None,
              statuses: tuple[str, ...] | None = None) -> int:
        return sum(n for (s, h, status), n in self.counts.items()
                   if (stage is None or s == stage) and (held is None or h == held)
                   and (statuses is None or status in statuses))

    def by_status(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_stage, _held, status), n in self.counts.items():
            totals[status] += n
        return dict(totals)


def lock_fanout(fanout_id: str) -> Fanout | None:
    """The fan-out row, locked for this transaction and read fresh."""
    return db.session.execute(
        db.select(Fanout).where(Fanout.id == fanout_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


@contextlib.contextmanager
def finishing_in_bulk(fanout_id: str) -> Iterator[None]:
    """While this transaction ends many of the fan-out's jobs, skip the per-job hook."""
    marked = db.session().info.setdefault(BULK_KEY, set())
    marked.add(fanout_id)
    try:
        yield
    finally:
        marked.discard(fanout_id)


def on_fanout_job_finished(job: Job) -> None:
    """A job of a fan-out ended: fill the window, stop if needed; completion is checked
    once this transaction has committed (``settle_finished_fanouts``).

    Call it as the last step before the commit: for a fan-out with rules it
    locks the fan-out row until then.
    """
    if job.fanout_id in db.session().info.get(BULK_KEY, ()):
        return
    fanout = db.session.get(Fanout, job.fanout_id)
    if fanout is None or fanout.done:
        return
    settle_after_commit(fanout.id)
    if not has_rules(fanout):
        return
    fanout = lock_fanout(fanout.id)
    if fanout is None or fanout.done:
        return
    if job.status != JobStatus.SUCCESS.value:
        stop_later_stages(fanout, job.fanout_stage or 0)
    advance(fanout)


def settle_after_commit(fanout_id: str) -> None:
    """Have ``settle_finished_fanouts`` check ``fanout_id`` once this transaction commits."""
    db.session().info.setdefault(SETTLE_KEY, set()).add(fanout_id)


def settle_finished_fanouts() -> list[str]:
    """After a commit: complete the committed finishers' fan-outs that have no open job left.

    Each check is a transaction of its own; returns the ids it completed.
    """
    ready = db.session().info.pop(SETTLE_READY_KEY, None)
    return [fanout_id for fanout_id in sorted(ready or ()) if complete_if_finished(fanout_id)]


def complete_if_finished(fanout_id: str) -> bool:
    """Complete the fan-out if none of its jobs is open (commits; locks only in that case).

    The probe runs without a lock; the lock is taken only when it found no open
    job, and the probe is repeated under it, so the completion is recorded once.
    """
    if open_jobs_left(fanout_id):
        db.session.commit()
        return False
    fanout = lock_fanout(fanout_id)
    if fanout is None or fanout.done or open_jobs_left(fanout_id):
        db.session.commit()
        return False
    complete(fanout, Tally.load(fanout_id))
    db.session.commit()
    return True


def complete_finished_fanouts() -> int:
    """Upkeep: complete running fan-outs whose last finisher never settled them (a crash
    between its commit and the check). Returns how many were completed."""
    open_job = sa.select(Job.id).where(Job.fanout_id == Fanout.id,
                                       Job.status.in_(OPEN_STATUSES)).exists()
    finished = db.session.execute(
        sa.select(Fanout.id).where(Fanout.status == FanoutStatus.RUNNING.value, ~open_job)
    ).scalars().all()
    db.session.commit()
    return sum(complete_if_finished(fanout_id) for fanout_id in finished)


@event.listens_for(Session, "after_commit")
def _ready_to_settle(session: Session) -> None:
    parked = session.info.pop(SETTLE_KEY, None)
    if parked:
        session.info.setdefault(SETTLE_READY_KEY, set()).update(parked)


@event.listens_for(Session, "after_rollback")
def _drop_settle(session: Session) -> None:
    session.info.pop(SETTLE_KEY, None)


def has_rules(fanout: Fanout) -> bool:
    """Whether finishing a job can release, stop or cancel others (else only completion)."""
    stages = fanout.stages or []
    return (len(stages) > 1 or fanout.error_limit is not None or fanout.stop_reason is not None
            or any(stage.get("max_concurrency") is not None for stage in stages))


def open_jobs_left(fanout_id: str) -> bool:
    """Whether any job of the fan-out is still pending or running (one index probe)."""
    return db.session.execute(
        sa.select(Job.id).where(Job.fanout_id == fanout_id, Job.status.in_(OPEN_STATUSES))
        .limit(1)).first() is not None


def advance(fanout: Fanout) -> None:
    """Apply the fan-out's rules to its current counts (the fan-out row is locked)."""
    tally = Tally.load(fanout.id)
    limit = fanout.error_limit
    if (limit is not None and fanout.stop_reason in (None, StopReason.STAGE_FAILED.value)
            and tally.count(statuses=ERROR_STATUSES) > limit):
        fanout.stop_reason = StopReason.MAX_ERRORS.value
        cancel_unstarted(fanout, StopReason.MAX_ERRORS.value)
        tally = Tally.load(fanout.id)
    if fanout.stop_reason not in (StopReason.MAX_ERRORS.value, StopReason.CANCELLED.value):
        release(fanout, tally)
    if tally.count(statuses=OPEN_STATUSES) == 0:
        complete(fanout, tally)


def release(fanout: Fanout, tally: Tally) -> None:
    """Release held jobs of the current stage into free window slots; when the stage
    finished with every job successful, move on to the next one."""
    stage = fanout.current_stage
    while True:
        in_flight = tally.count(stage=stage, held=False, statuses=OPEN_STATUSES)
        waiting = tally.count(stage=stage, held=True, statuses=(JobStatus.PENDING.value,))
        if waiting == 0 and in_flight == 0:
            last = stage + 1 >= len(fanout.stages)
            size = tally.count(stage=stage)
            if last or tally.count(stage=stage, statuses=(JobStatus.SUCCESS.value,)) < size:
                return
            stage += 1
            fanout.current_stage = stage
            continue
        window = (fanout.stages[stage] or {}).get("max_concurrency")
        room = waiting if window is None else min(waiting, window - in_flight)
        if room > 0:
            release_jobs(fanout.id, stage, room)
        return


def release_jobs(fanout_id: str, stage: int, count: int) -> list[Job]:
    """Un-hold the next ``count`` held jobs of ``stage`` (release order) and queue them."""
    jobs = list(db.session.execute(
        db.select(Job).where(Job.fanout_id == fanout_id, Job.fanout_stage == stage,
                             Job.held.is_(True), Job.status == JobStatus.PENDING.value)
        .order_by(Job.fanout_seq).limit(count).with_for_update(skip_locked=True)
    ).scalars())
    for job in jobs:
        job.held = False
    db.session.flush()
    fanout_queue.enqueue_after_commit(jobs)
    return jobs


def stop_later_stages(fanout: Fanout, stage: int) -> None:
    """A job of ``stage`` did not succeed: the stages after it never start."""
    if stage + 1 >= len(fanout.stages):
        return
    if cancel_unstarted(fanout, StopReason.STAGE_FAILED.value, Job.fanout_stage > stage):
        fanout.stop_reason = fanout.stop_reason or StopReason.STAGE_FAILED.value


def cancel_unstarted(fanout: Fanout, reason: str, *conditions: Any) -> list[Job]:
    """End the fan-out's not yet started jobs as ``cancelled`` with error ``reason``.

    Each still gets its ``job.cancelled`` event and webhook; queued ones are
    taken off their queues after the commit.
    """
    from orchestrator.services.completion import on_job_finished

    candidates = list(db.session.execute(
        db.select(Job).where(Job.fanout_id == fanout.id, Job.status == JobStatus.PENDING.value,
                             Job.cancel_requested_at.is_(None), *conditions)
        .order_by(Job.fanout_seq).with_for_update(skip_locked=True)
    ).scalars())
    if not candidates:
        return []
    now = utcnow()
    queued = [job for job in candidates if not job.held]
    with finishing_in_bulk(fanout.id):
        for job in candidates:
            job.status, job.error, job.held = JobStatus.CANCELLED.value, reason, False
            job.completed_at, job.cancel_requested_at, job.lease_expires_at = now, now, None
        db.session.flush()
        for job in candidates:
            on_job_finished(job)
    fanout_queue.withdraw_after_commit(queued)
    return candidates


def complete(fanout: Fanout, tally: Tally) -> None:
    """Every job ended: record the outcome and the ``fanout.completed`` event (once)."""
    counts = tally.by_status()
    if fanout.stop_reason == StopReason.CANCELLED.value:
        status = FanoutStatus.CANCELLED
    elif counts.get(JobStatus.SUCCESS.value, 0) == fanout.total:
        status = FanoutStatus.SUCCESS
    else:
        status = FanoutStatus.FAILED
    fanout.status, fanout.completed_at = status.value, utcnow()
    record_event(fanout.tenant_id, "fanout.completed", subject=fanout.id, payload={
        "fanout_id": fanout.id, "script": fanout.script, "status": fanout.status,
        "stop_reason": fanout.stop_reason, "total": fanout.total,
        "counts": {s: counts.get(s, 0) for s in TERMINAL_STATUSES},
    })


def get_fanout(fanout_id: str) -> Fanout:
    """The current tenant's fan-out; 404 ``fanout_not_found`` otherwise."""
    fanout = db.session.execute(
        db.select(Fanout).where(Fanout.id == fanout_id)).scalar_one_or_none()
    if fanout is None:
        raise NotFound(f"No fan-out '{fanout_id}'.", error_code="fanout_not_found",
                       details={"fanout_id": fanout_id})
    return fanout


def cancel_fanout(fanout_id: str) -> Fanout:
    """Cancel every unfinished job: pending ones at once, running ones are asked to stop.

    First the stop is committed under the fan-out lock, so no finisher releases
    another job; then the jobs are cancelled without holding that lock (their
    finishers may hold a job and wait for it), and the lock is taken last.
    """
    fanout = get_fanout(fanout_id)
    if fanout.done:
        return fanout
    fanout = lock_fanout(fanout.id)
    fanout.stop_reason = StopReason.CANCELLED.value
    db.session.commit()
    now = utcnow()
    _cancel_pending(fanout.id, now)
    db.session.execute(
        sa.update(Job).where(Job.fanout_id == fanout.id, Job.status == JobStatus.RUNNING.value,
                             Job.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now).execution_options(synchronize_session=False))
    fanout = lock_fanout(fanout.id)
    tally = Tally.load(fanout.id)
    if not fanout.done and tally.count(statuses=OPEN_STATUSES) == 0:
        complete(fanout, tally)
    settle_after_commit(fanout.id)  # a finisher that saw no rules may have committed meanwhile
    db.session.commit()
    settle_finished_fanouts()
    return fanout


def _cancel_pending(fanout_id: str, now: Any) -> None:
    """Cancel the fan-out's pending jobs (conditional UPDATE; events and webhooks per job)."""
    from orchestrator.services.completion import on_job_finished

    cancelled_ids = db.session.execute(
        sa.update(Job).where(Job.fanout_id == fanout_id, Job.status == JobStatus.PENDING.value)
        .values(status=JobStatus.CANCELLED.value, error="cancelled", completed_at=now,
                cancel_requested_at=now, lease_expires_at=None)
        .returning(Job.id, Job.held).execution_options(synchronize_session=False)
    ).all()
    if not cancelled_ids:
        return
    jobs = list(db.session.execute(
        db.select(Job).where(Job.id.in_([row[0] for row in cancelled_ids]))
        .execution_options(populate_existing=True)).scalars())
    with finishing_in_bulk(fanout_id):
        for job in jobs:
            on_job_finished(job)
    held = {row[0] for row in cancelled_ids if row[1]}
    fanout_queue.withdraw_after_commit([job for job in jobs if job.id not in held])
