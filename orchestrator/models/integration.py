"""Notification integrations (Slack, PagerDuty, ...): tenant-owned and instance-wide.

Secret fields are stored only encrypted (``orchestrator.services.crypto``) in
``secrets``: ``{field: {"kid", "nonce", "ct"}}``. ``config`` holds the rest,
including ``events`` (the event types the integration receives).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class IntegrationColumns:
    """The columns tenant and global integrations share."""

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("integration"))
    type: Mapped[str] = mapped_column(sa.String(32))
    #: ai_provider and git integrations: the service (openai, anthropic, github, ...).
    provider: Mapped[str | None] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    secrets: Mapped[dict[str, dict[str, str]]] = mapped_column(sa.JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: "active" or "error" (after a failed connection test).
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    last_test_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_test_status: Mapped[str | None] = mapped_column(sa.String(16))
    last_test_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    scope = "tenant"

    @property
    def events(self) -> list[str]:
        return list((self.config or {}).get("events") or [])


class Integration(IntegrationColumns, TenantScoped, Base):
    """A tenant's own integration."""

    __tablename__ = "integrations"


class GlobalIntegration(IntegrationColumns, Base):
    """An instance admin's integration, used by tenants with none of its type for an event."""

    __tablename__ = "global_integrations"

    scope = "global"
