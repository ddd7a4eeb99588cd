"""Outbound HTTP deliveries (completion webhooks, notifications), one row per attempt."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class Delivery(TenantScoped, Base):
    """One attempt to deliver one payload; retries are further rows with higher ``attempt``."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.Index("ix_deliveries_job_created", "job_id", "created_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: "webhook" (a job's completion webhook) or "integration".
    kind: Mapped[str] = mapped_column(sa.String(16))
    job_id: Mapped[str | None] = mapped_column(sa.String(32))
    event_id: Mapped[str | None] = mapped_column(sa.String(32))
    event_type: Mapped[str | None] = mapped_column(sa.String(64))
    #: The integration (``int_...``), or ``env:<type>`` for an environment fallback.
    integration_id: Mapped[str | None] = mapped_column(sa.String(40))
    integration_type: Mapped[str | None] = mapped_column(sa.String(32))
    #: Scheme and host only: full URLs may carry secrets (Slack, Discord).
    target: Mapped[str | None] = mapped_column(sa.String(300))
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    success: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookSecret(TenantScoped, Base):
    """A tenant's webhook signing secret, encrypted like integration secrets."""

    __tablename__ = "webhook_secrets"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_webhook_secrets_tenant"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: ``{"kid", "nonce", "ct"}`` (see ``orchestrator.services.crypto``).
    secret: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
