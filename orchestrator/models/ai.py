"""AI settings (which integration serves which AI task) and the AI analyses that ran."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class AiConfigColumns:
    """What a tenant's and the instance's AI settings share."""

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: An ``ai_provider`` integration id, or None.
    default_provider: Mapped[str | None] = mapped_column(sa.String(32))
    #: ``[{"agent_name": task, "integration_id": id}, ...]``.
    agent_overrides: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AiConfig(AiConfigColumns, TenantScoped, Base):
    """A tenant's AI routing (``PUT /ai-config``)."""

    __tablename__ = "ai_configs"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_ai_configs_tenant"),)

    #: Diagnose every failed or timed-out job automatically.
    auto_diagnose: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class GlobalAiConfig(AiConfigColumns, Base):
    """The instance's AI routing (``PUT /admin/ai-config``): one row at most."""

    __tablename__ = "global_ai_config"


class AiAnalysis(TenantScoped, Base):
    """One AI task run (diagnosis, repair, flakiness): queued, then ``done`` or ``error``."""

    __tablename__ = "ai_analyses"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    task: Mapped[str] = mapped_column(sa.String(32))
    #: The subject: a job (diagnosis, repair), a script or a schedule (flakiness).
    job_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    script: Mapped[str | None] = mapped_column(sa.String(255))
    schedule_id: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
