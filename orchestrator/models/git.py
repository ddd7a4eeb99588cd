"""Git webhook deliveries (replay guard and the run each triggered) and PR comments."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class GitDelivery(TenantScoped, Base):
    """One accepted webhook call; its delivery id and body digest are remembered so a replay
    is refused."""

    __tablename__ = "git_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("integration_id", "delivery_id", name="uq_git_deliveries_delivery"),
        sa.UniqueConstraint("integration_id", "body_sha256", name="uq_git_deliveries_body"),
        sa.Index("ix_git_deliveries_job", "job_id"),
        sa.Index("ix_git_deliveries_fanout", "fanout_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(sa.String(32))
    delivery_id: Mapped[str] = mapped_column(sa.String(200))
    #: The signature covers the body but not the delivery id header: a captured call
    #: replayed under a new id still has the same body.
    body_sha256: Mapped[str] = mapped_column(sa.String(64))
    event: Mapped[str] = mapped_column(sa.String(32))
    repo: Mapped[str | None] = mapped_column(sa.String(300))
    branch: Mapped[str | None] = mapped_column(sa.String(300))
    sha: Mapped[str | None] = mapped_column(sa.String(64))
    pr: Mapped[int | None] = mapped_column(sa.Integer)
    #: received, triggered, ignored (nothing matched), error (the trigger was refused);
    #: then reporting, reported, retrying or report_failed (the write-back).
    state: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    job_id: Mapped[str | None] = mapped_column(sa.String(32))
    fanout_id: Mapped[str | None] = mapped_column(sa.String(32))
    report_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GitComment(TenantScoped, Base):
    """The one result comment on a pull request, edited on every re-run."""

    __tablename__ = "git_comments"
    __table_args__ = (
        sa.UniqueConstraint("integration_id", "pr", name="uq_git_comments_pr"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(sa.String(32))
    pr: Mapped[int] = mapped_column(sa.Integer)
    comment_id: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
