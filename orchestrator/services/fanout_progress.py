"""A fan-out's progress: releasing held jobs, stopping on errors or a failed canary, finishing.

``on_job_finished`` is an in-transaction subscriber of ``job.finished``
(``orchestrator.subscribers``): it runs in the transaction that makes one of
the fan-out's jobs terminal. Only a fan-out with rules (a window, an error
limit, canary stages, a stop) needs a decision per job: for those it locks
the fan-out row (``SELECT ... FOR UPDATE``; SQLite serialises writers
anyway) as the transaction's last step, so however many hub replicas and
workers finish jobs at once, each decision is taken by one of them against
committed counts: a window slot is filled once, the error limit trips once.

Completion never needs that lock on the hot path. Once a finishing
transaction has committed, ``settle`` (an after-commit subscriber) looks in
a new transaction for an open job and, only when there is none, takes the
lock, checks again and records ``fanout.completed`` (once). Whichever of two
concurrent last finishers commits second sees both commits, so a fan-out is
always completed; ``complete_finished_fanouts`` (maintenance) completes one
whose last finisher crashed between its commit and that check.

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
from orchestrator.services import lifecycle, rollout
from orchestrator.services.events import record_event

OPEN_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
#: Statuses that count against ``max_errors`` (a user's cancel is not an error).
ERROR_STATUSES = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value, JobStatus.EXPIRED.value)
#: Session flag: fan-outs whose jobs this transaction is finishing itself.
BULK_KEY = "scriptmesh.fanout_bulk"


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


def on_job_finished(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` (in the transaction): fill the window, stop if needed.

    Completion is checked once this transaction has committed (``settle``).
    For a fan-out with rules it locks the fan-out row until the commit, so it
    must be the finishing transaction's last step.
    """
    fanout_id = payload["fanout_id"]
    if fanout_id in db.session().info.get(BULK_KEY, ()):
        return
    fanout = db.session.get(Fanout, fanout_id)
    if fanout is None or fanout.done or not has_rules(fanout):
        return
    fanout = lock_fanout(fanout.id)
    if fanout is None or fanout.done:
        return
    if payload["status"] != JobStatus.SUCCESS.value:
        stop_later_stages(fanout, payload["fanout_stage"] or 0)
    advance(fanout)


def settle(payload: dict[str, Any], _attempt: int = 1) -> None:
    """``job.finished`` (after the commit): complete the fan-out if no job is open."""
    complete_if_finished(payload["fanout_id"])


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


def has_rules(fanout: Fanout) -> bool:
    """Whether finishing a job can release, stop or cancel others (else only completion)."""
    stages = fanout.stages or []
    return (len(stages) > 1 or fanout.paused_at is not None or rollout.has_verify(fanout)
            or fanout.error_limit is not None
            or fanout.stop_reason is not None
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
        if sum(tally.counts.values()) != fanout.total:  # verify jobs were added
            tally = Tally.load(fanout.id)
    if tally.count(statuses=OPEN_STATUSES) == 0:
        complete(fanout, tally)


def release(fanout: Fanout, tally: Tally) -> None:
    """Release held jobs of the current stage into free window slots; when the stage
    finished with every job successful, move on to the next one."""
    stage = fanout.current_stage
    if fanout.paused_at is not None:  # rollout.pause: nothing new starts
        return
    while True:
        in_flight = tally.count(stage=stage, held=False, statuses=OPEN_STATUSES)
        waiting = tally.count(stage=stage, held=True, statuses=(JobStatus.PENDING.value,))
        if waiting == 0 and in_flight == 0:
            last = stage + 1 >= len(fanout.stages)
            size = tally.count(stage=stage)
            if tally.count(stage=stage, statuses=(JobStatus.SUCCESS.value,)) < size:
                return
            if rollout.start_verify(fanout, stage):  # the stage's verify script first
                return
            if last or rollout.holds_next_stage(fanout, stage):  # approval gate, bake time
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
    lifecycle.queue_jobs(jobs)
    return jobs


def stop_later_stages(fanout: Fanout, stage: int) -> None:
    """A job of ``stage`` did not succeed: the stages after it never start."""
    if stage + 1 >= len(fanout.stages):
        return
    if cancel_unstarted(fanout, StopReason.STAGE_FAILED.value, Job.fanout_stage > stage):
        fanout.stop_reason = fanout.stop_reason or StopReason.STAGE_FAILED.value


def cancel_unstarted(fanout: Fanout, reason: str, *conditions: Any) -> list[Job]:
    """End the fan-out's not yet started jobs as ``cancelled`` with error ``reason``.

    Each still gets its ``job.cancelled`` event and webhook, and a queued one
    is taken off its queue after the commit.
    """
    candidates = list(db.session.execute(
        db.select(Job).where(Job.fanout_id == fanout.id, Job.status == JobStatus.PENDING.value,
                             Job.cancel_requested_at.is_(None), *conditions)
        .order_by(Job.fanout_seq).with_for_update(skip_locked=True)
    ).scalars())
    return _cancel_jobs(fanout.id, candidates, reason)


def _cancel_jobs(fanout_id: str, jobs: list[Job], reason: str) -> list[Job]:
    """Cancel pending ``jobs`` of a fan-out (its own progress rules are not re-run per job)."""
    now = utcnow()
    with finishing_in_bulk(fanout_id):
        return lifecycle.finish_jobs(jobs, JobStatus.CANCELLED.value,
                                     Job.status == JobStatus.PENDING.value, error=reason,
                                     cancel_requested_at=now, held=False, completed_at=now)


def complete(fanout: Fanout, tally: Tally) -> None:
    """Every job ended: record the outcome and the ``fanout.completed`` event (once)."""
    counts = tally.by_status()
    if fanout.stop_reason == StopReason.CANCELLED.value:
        status = FanoutStatus.CANCELLED
    elif counts.get(JobStatus.SUCCESS.value, 0) == fanout.total:
        status = FanoutStatus.SUCCESS
    else:
        status = FanoutStatus.FAILED
    # A conditional UPDATE, not the row lock alone: SQLite has no SELECT ... FOR UPDATE, so
    # two last finishers may both get here; only the first records the completion.
    if not db.session.execute(
            sa.update(Fanout).where(Fanout.id == fanout.id, Fanout.completed_at.is_(None))
            .values(status=status.value, completed_at=utcnow())).rowcount:
        return
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
    _cancel_pending(fanout.id)
    db.session.execute(
        sa.update(Job).where(Job.fanout_id == fanout.id, Job.status == JobStatus.RUNNING.value,
                             Job.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    complete_if_finished(fanout.id)  # a finisher that saw no rules may have committed meanwhile
    return get_fanout(fanout.id)


def _cancel_pending(fanout_id: str) -> None:
    """Cancel the fan-out's pending jobs (events, webhooks and withdrawal per job)."""
    pending = list(db.session.execute(
        db.select(Job).where(Job.fanout_id == fanout_id, Job.status == JobStatus.PENDING.value)
        .order_by(Job.fanout_seq)).scalars())
    _cancel_jobs(fanout_id, pending, lifecycle.CANCELLED)
