"""The transactional outbox: side effects written in the transaction that caused them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, UTCDateTime, utcnow


class OutboxMessage(Base):
    """One side effect one subscriber must carry out; deleted once it has been.

    Not tenant-scoped: the relay delivers for every tenant (payloads name theirs).
    """

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "dead_at", "available_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: The event that caused it ("job.finished") and the subscriber that handles it.
    event: Mapped[str] = mapped_column(sa.String(64))
    subscriber: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The relay picks the message up from this instant (the fast path needs no relay).
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Delivery attempts started so far.
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: A deliverer holds the message until then (a crashed one lets it go).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    #: Set when the subscriber gave up (out of retries); the row stays for inspection.
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
