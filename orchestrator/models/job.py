"""Jobs: the database row is the truth; Redis only carries the work to agents."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow
from orchestrator.models.job_step import JobStep


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s.is_terminal)


class Job(TenantScoped, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        sa.Index("ix_jobs_fanout_status", "fanout_id", "status"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("job"))
    #: The agent that is to run (or ran) it; null for a pool job not yet taken.
    agent_id: Mapped[str | None] = mapped_column(
        sa.String(32), sa.ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    agent_name: Mapped[str | None] = mapped_column(sa.String(200))
    #: For pool jobs: the tag whose agents share the queue.
    pool: Mapped[str | None] = mapped_column(sa.String(200))
    #: "script", or "flow": then ``script`` holds the flow's name (shown as ``flow``).
    kind: Mapped[str] = mapped_column(sa.String(16), default="script")
    script: Mapped[str] = mapped_column(sa.String(255))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: A flow job's trigger variables (JSON values); empty for scripts.
    variables: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default=JobStatus.PENDING.value,
                                        index=True)
    exit_code: Mapped[int | None] = mapped_column(sa.Integer)
    stdout: Mapped[str] = mapped_column(sa.Text, default="")
    stderr: Mapped[str] = mapped_column(sa.Text, default="")
    truncated: Mapped[dict[str, bool]] = mapped_column(sa.JSON, default=dict)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    timeout: Mapped[int] = mapped_column(sa.Integer, default=300)
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2000))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    #: Pending past this instant -> status expired (from the request's queue_ttl).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set while the job is handed to an agent; renewed by heartbeats and output.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatch_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fanout_id: Mapped[str | None] = mapped_column(sa.String(32))  # ix_jobs_fanout_status
    #: Fan-out jobs: the canary stage (0 first) and the release order within the fan-out.
    fanout_stage: Mapped[int | None] = mapped_column(sa.Integer)
    fanout_seq: Mapped[int | None] = mapped_column(sa.Integer)
    #: A fan-out job waiting for its turn (max_concurrency, stages): pending, not queued.
    held: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    schedule_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    #: The latest AI diagnosis (``orchestrator.services.ai.analysis``), or None.
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: At most one running job per agent holds a lock name (``orchestrator.services.locks``).
    lock: Mapped[str | None] = mapped_column(sa.String(200))
    #: At most ``concurrency_limit`` jobs of a group run at once across the tenant's fleet.
    concurrency_group: Mapped[str | None] = mapped_column(sa.String(200))
    concurrency_limit: Mapped[int | None] = mapped_column(sa.Integer)
    #: A result that arrived after the hub had ended the job (e.g. ``agent_lost``):
    #: ``{"status", "exit_code", "received_at"}``, kept beside the first verdict.
    late_result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_by: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A flow job's steps in the order they started (loaded when read).
    steps: Mapped[list[JobStep]] = relationship(
        order_by="JobStep.seq", viewonly=True, lazy="select")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def flow(self) -> str | None:
        """The flow's name for a flow job, else None."""
        return self.script if self.kind == "flow" else None
