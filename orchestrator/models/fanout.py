"""Fan-outs: one request that ran a script on many agents, one job per target agent."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class FanoutStatus(enum.StrEnum):
    RUNNING = "running"
    #: Every job succeeded.
    SUCCESS = "success"
    #: Every job ended, at least one not successfully (or the fan-out stopped itself).
    FAILED = "failed"
    #: A user cancelled it.
    CANCELLED = "cancelled"


class StopReason(enum.StrEnum):
    """Why a fan-out stopped handing out its remaining jobs."""

    MAX_ERRORS = "max_errors"
    STAGE_FAILED = "stage_failed"
    CANCELLED = "cancelled"


class Fanout(TenantScoped, Base):
    """A fan-out's plan and progress; its jobs carry ``fanout_id``, ``fanout_stage`` and
    ``fanout_seq`` (the release order), and ``held`` while they wait for their turn."""

    __tablename__ = "fanouts"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_fanouts_tenant_idempotency"),
        sa.Index("ix_fanouts_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("fanout"))
    #: "script" or "flow": what ``script`` names.
    kind: Mapped[str] = mapped_column(sa.String(16), default="script")
    script: Mapped[str] = mapped_column(sa.String(255))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: A flow fan-out's trigger variables.
    variables: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    timeout: Mapped[int] = mapped_column(sa.Integer, default=300)
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2000))
    #: The selection as requested: {"agents", "tags", "only_online"} (stages are in ``stages``).
    selection: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: The resolved plan: [{"agents": [name, ...], "max_concurrency": int | None,
    #: "selector": {"agents"?, "tags"?, "max_concurrency"?}}]; one stage without canaries.
    stages: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    #: As requested ("10" or "25%"); resolved per stage in ``stages``.
    max_concurrency: Mapped[str | None] = mapped_column(sa.String(16))
    #: As requested ("3" or "10%"); ``error_limit`` is the resolved count.
    max_errors: Mapped[str | None] = mapped_column(sa.String(16))
    error_limit: Mapped[int | None] = mapped_column(sa.Integer)
    #: Agents the selection named or matched that got no job: [{"agent", "reason"}].
    skipped: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, default=list)
    total: Mapped[int] = mapped_column(sa.Integer, default=0)
    current_stage: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default=FanoutStatus.RUNNING.value,
                                        index=True)
    stop_reason: Mapped[str | None] = mapped_column(sa.String(32))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    created_by: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What holds the next stage: "awaiting_approval" or "baking" (until ``gate_until``).
    gate: Mapped[str | None] = mapped_column(sa.String(32))
    gate_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Paused (``POST /fanouts/{id}/pause``): no new target starts; running ones finish.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The fan-out this one re-runs (``POST /fanouts/{id}/rerun``).
    rerun_of: Mapped[str | None] = mapped_column(sa.String(32))
    schedule_id: Mapped[str | None] = mapped_column(sa.String(32))
    verify_script: Mapped[str | None] = mapped_column(sa.String(255))
    #: Job fields every target's job gets: {"lock", "concurrency_group", "concurrency_limit"}.
    job_options: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    @property
    def done(self) -> bool:
        return self.completed_at is not None
