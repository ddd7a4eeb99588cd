"""Flow job steps: one row per step of a flow run, built from the events its agent streams."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, TenantScoped, UTCDateTime


class StepStatus:
    """The statuses a step goes through (the flow engine's words)."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class JobStep(TenantScoped, Base):
    """A step of a flow job as its agent reported it: only what may leave the agent.

    ``step_id`` is the engine's qualified id (``check.then_step``, ``loop[2].inner``),
    unique within a run; ``parent`` is the enclosing step's id (None at the top level).
    ``seq`` is the event that created the row (so steps list in the order they
    started) and ``last_seq`` the last event applied to it: an event at or below it
    is a repeated upload and changes nothing.
    """

    __tablename__ = "job_steps"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "step_id", name="uq_job_steps_job_step"),
        sa.Index("ix_job_steps_job_seq", "job_id", "seq"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(sa.String(500))
    parent: Mapped[str | None] = mapped_column(sa.String(500))
    name: Mapped[str | None] = mapped_column(sa.String(500))
    action: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=StepStatus.RUNNING)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    attempts: Mapped[int | None] = mapped_column(sa.Integer)
    #: [{"expression", "passed", "actual"? (only with report_values), "error"?}]
    assertions: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: The values named in the step's ``output:`` (nothing else of its result).
    outputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: Why a skipped step did not run (``when is false``).
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    seq: Mapped[int] = mapped_column(sa.Integer)
    last_seq: Mapped[int] = mapped_column(sa.Integer)
