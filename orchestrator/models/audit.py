"""The append-only audit log (who did what, when) and alert rules' per-problem state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class AuditEntry(TenantScoped, Base):
    """One action: never updated; deleted only by retention (``AUDIT_RETENTION_DAYS``)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: The user id (or "scheduler", "system") that acted.
    actor: Mapped[str | None] = mapped_column(sa.String(64))
    #: "user", "api_key", "agent" or "system".
    actor_kind: Mapped[str] = mapped_column(sa.String(16), default="user")
    action: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str | None] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertState(TenantScoped, Base):
    """An integration rule's memory of one problem key (schedule, or script+agent)."""

    __tablename__ = "alert_states"
    __table_args__ = (sa.UniqueConstraint("integration_id", "key",
                                          name="uq_alert_states_integration_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str] = mapped_column(sa.String(400))
    #: Consecutive failures so far.
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: ISO times of recent failures (for ``within``/``count`` rules).
    recent: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    #: An alert was sent and no recovery yet: further alerts are suppressed.
    open: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
