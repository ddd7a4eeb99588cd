"""The transactional outbox: side effects that must happen once a change has committed.

``emit(event, payload)`` is called inside the transaction that changes state
(a job finished, a job was queued, an event was recorded). For each
subscriber of that event (registered in ``create_app`` through
``orchestrator.subscribers``) it either

- calls it at once, inside the transaction (``IN_TRANSACTION``: fan-out
  progress, which must decide under the same lock), or
- remembers it for after the commit, best effort (``AFTER_COMMIT``: wake-ups
  that only save latency, such as a synchronous trigger's), or
- writes an ``outbox`` row in the same transaction (``INLINE`` and
  ``BACKGROUND``): the side effect is then as durable as the change itself.

After the commit (``extensions.OutboxSession.commit``), INLINE rows are delivered right
there (an agent queue push: a few Redis commands) and BACKGROUND rows are
handed to ``scriptmesh worker`` through RQ (webhooks, notifications). A row is
deleted once delivered. Whatever the fast path could not do (Redis down, a
crash after the commit, a receiver answering 503) is found by ``relay_due``,
which the scheduler runs every second: it delivers due INLINE rows itself and
re-queues due BACKGROUND ones, so a Redis flush or restart loses nothing.
Failed deliveries are retried with backoff until the subscriber's
``max_attempts``; then the row is kept with ``dead_at`` set.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app

from orchestrator.extensions import OUTBOX_KEY, OUTBOX_PENDING_KEY, db
from orchestrator.models import OutboxMessage, utcnow
from orchestrator.queues import background_queue
from orchestrator.tasks import task

log = logging.getLogger(__name__)

#: The relay leaves a fresh row to the fast path for this long.
RELAY_GRACE = timedelta(seconds=5)
#: A deliverer holds a row this long; one that crashed lets it go then.
CLAIM_SECONDS = 120
RELAY_BATCH = 200
#: Seconds before retry N of a failed delivery (the last value repeats).
DEFAULT_BACKOFF = (1, 5, 30, 120, 600)
DEFAULT_MAX_ATTEMPTS = 10


class Mode(enum.StrEnum):
    IN_TRANSACTION = "in_transaction"
    AFTER_COMMIT = "after_commit"
    INLINE = "inline"
    BACKGROUND = "background"


class RetryLater(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a handler: this attempt failed; try again after ``delay`` seconds
    (``None``: give up now)."""

    def __init__(self, reason: str, delay: float | None) -> None:
        super().__init__(reason)
        self.delay = delay


Handler = Callable[[dict[str, Any], int], None]


@dataclass(frozen=True)
class Subscriber:
    """What runs when ``event`` is emitted.

    :param handle: called with the payload and the attempt number (1 first).
    :param accepts: called at emit time; False skips this subscriber for that payload.
    """

    name: str
    event: str
    handle: Handler
    mode: Mode
    accepts: Callable[[dict[str, Any]], bool] | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


class Registry:
    """The app's subscribers by event (and by name, for the relay)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Subscriber] = {}

    def add(self, subscriber: Subscriber) -> None:
        if subscriber.name in self.by_name:
            raise ValueError(f"subscriber {subscriber.name!r} registered twice")
        self.by_name[subscriber.name] = subscriber

    def for_event(self, event: str) -> list[Subscriber]:
        return [s for s in self.by_name.values() if s.event == event]

    def after_commit(self, session: sa.orm.Session, pending: list[tuple[Any, ...]]) -> None:
        """Called by ``db.session`` once a transaction that emitted has committed."""
        _after_commit(session, pending)


def init_app(app: Flask) -> Registry:
    """Give ``app`` an empty registry (``orchestrator.subscribers`` fills it)."""
    registry = Registry()
    app.extensions[OUTBOX_KEY] = registry
    return registry


def registry() -> Registry:
    return current_app.extensions[OUTBOX_KEY]


def emit(event: str, payload: dict[str, Any], *, delay: float | None = None) -> None:
    """Announce ``event`` inside the current transaction (the caller commits).

    :param delay: seconds before durable subscribers handle it (the relay delivers it
        then; ``None``: right after the commit).
    """
    session = db.session()
    now = utcnow()
    for subscriber in registry().for_event(event):
        if subscriber.accepts is not None and not subscriber.accepts(payload):
            continue
        if subscriber.mode is Mode.IN_TRANSACTION:
            subscriber.handle(payload, 1)
            continue
        message = None
        if subscriber.mode is not Mode.AFTER_COMMIT:
            available = now + (timedelta(seconds=delay) if delay is not None else RELAY_GRACE)
            message = OutboxMessage(event=event, subscriber=subscriber.name, payload=payload,
                                    created_at=now, available_at=available, attempts=0)
            session.add(message)
            if delay is not None:
                continue  # the relay picks it up when it is due
        session.info.setdefault(OUTBOX_PENDING_KEY, []).append((subscriber, payload, message))


def _after_commit(session: sa.orm.Session, pending: list[tuple[Any, ...]]) -> None:
    background: list[int] = []
    for subscriber, payload, message in pending:
        message_id = sa.inspect(message).identity[0] if message is not None else None
        if subscriber.mode is Mode.BACKGROUND:
            background.append(message_id)
            continue
        try:
            subscriber.handle(payload, 1)
        except Exception as exc:  # noqa: BLE001 - the commit stands; the relay retries
            session.rollback()
            log.warning("%s: %s failed after commit (%s); %s", subscriber.event,
                        subscriber.name, _reason(exc),
                        "the relay retries it" if message_id else "not retried")
            continue
        if message_id is not None:
            session.execute(sa.delete(OutboxMessage).where(OutboxMessage.id == message_id))
            session.commit()
    if background:
        _hand_to_worker(background)


def _hand_to_worker(message_ids: list[int]) -> None:
    try:
        background_queue().enqueue(deliver_messages, message_ids)
    except redis.RedisError as exc:
        log.warning("%d outbox message(s) not handed to the worker (%s); the relay will",
                    len(message_ids), type(exc).__name__)


@task
def deliver_messages(message_ids: list[int]) -> int:
    """RQ task: deliver outbox rows (each claimed first, so a duplicate task is harmless)."""
    return sum(deliver(message_id) for message_id in message_ids)


def deliver(message_id: int) -> bool:
    """Claim one row, run its subscriber, then delete it (or schedule its retry)."""
    now = utcnow()
    claimed = db.session.execute(
        sa.update(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.dead_at.is_(None),
            sa.or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    message = db.session.get(OutboxMessage, message_id) if claimed else None
    if message is None:
        return False
    subscriber = registry().by_name.get(message.subscriber)
    try:
        if subscriber is None:
            raise RetryLater(f"no subscriber {message.subscriber!r} in this app", None)
        subscriber.handle(dict(message.payload), message.attempts)
    except RetryLater as exc:
        _reschedule(message, subscriber, str(exc), exc.delay)
        return False
    except Exception as exc:  # noqa: BLE001 - recorded on the row, retried with backoff
        db.session.rollback()
        message = db.session.get(OutboxMessage, message_id)
        log.exception("outbox %s/%s failed", message.event, message.subscriber)
        _reschedule(message, subscriber, _reason(exc), backoff(message.attempts))
        return False
    db.session.delete(message)
    db.session.commit()
    return True


def _reschedule(message: OutboxMessage, subscriber: Subscriber | None, reason: str,
                delay: float | None) -> None:
    now = utcnow()
    limit = subscriber.max_attempts if subscriber else 0
    message.last_error, message.claimed_until = reason[:500], None
    if delay is None or message.attempts >= limit:
        message.dead_at = now
        log.warning("outbox %s/%s gave up after %d attempt(s): %s", message.event,
                    message.subscriber, message.attempts, reason)
    else:
        message.available_at = now + timedelta(seconds=max(delay, 0))
    db.session.commit()


def backoff(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts."""
    return DEFAULT_BACKOFF[min(max(attempts, 1), len(DEFAULT_BACKOFF)) - 1]


def relay_due() -> int:
    """Deliver (INLINE) or re-queue (BACKGROUND) every due row; return how many.

    Run every second by the leading scheduler; safe from several processes
    (each row is claimed before it is delivered).
    """
    now = utcnow()
    rows = db.session.execute(
        sa.select(OutboxMessage.id, OutboxMessage.subscriber).where(
            OutboxMessage.dead_at.is_(None), OutboxMessage.available_at <= now,
            sa.or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.available_at).limit(RELAY_BATCH)).all()
    db.session.commit()
    subscribers = registry().by_name
    queued = [row.id for row in rows if _mode(subscribers, row.subscriber) is Mode.BACKGROUND]
    if queued:  # not picked again before the worker's claim could have expired
        db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.id.in_(queued)).values(
            available_at=now + timedelta(seconds=CLAIM_SECONDS)))
        db.session.commit()
        _hand_to_worker(queued)
    for row in rows:
        if row.id not in queued:
            deliver(row.id)
    return len(rows)


def _mode(subscribers: dict[str, Subscriber], name: str) -> Mode:
    subscriber = subscribers.get(name)
    return subscriber.mode if subscriber else Mode.INLINE


def pending_count(subscriber_names: Iterable[str] | None = None) -> int:
    """Undelivered, live rows (for tests and metrics)."""
    query = sa.select(sa.func.count()).select_from(OutboxMessage).where(
        OutboxMessage.dead_at.is_(None))
    if subscriber_names is not None:
        query = query.where(OutboxMessage.subscriber.in_(list(subscriber_names)))
    return int(db.session.execute(query).scalar_one())


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
