"""Cron schedules and the record of each of their fire times (runs, skips, misses)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class Schedule(TenantScoped, Base):
    """A script run on a 5-field cron expression in a time zone.

    ``next_fire`` is the claim token: a scheduler fires a due time by moving
    it forward with a conditional UPDATE in the transaction that creates the
    job(s), so however many schedulers run, each fire time fires once.
    """

    __tablename__ = "schedules"
    __table_args__ = (sa.Index("ix_schedules_enabled_next_fire", "enabled", "next_fire"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("schedule"))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    #: Target: exactly one of agent, agents, tags or pool is set.
    agent: Mapped[str | None] = mapped_column(sa.String(200))
    agents: Mapped[list[str] | None] = mapped_column(sa.JSON)
    tags: Mapped[list[str] | None] = mapped_column(sa.JSON)
    pool: Mapped[str | None] = mapped_column(sa.String(200))
    #: "script" (``script`` names a manifest script) or "flow" (``script`` names a flow).
    kind: Mapped[str] = mapped_column(sa.String(16), default="script")
    script: Mapped[str] = mapped_column(sa.String(255))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: Trigger variables of a flow schedule.
    variables: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2000))
    timeout: Mapped[int | None] = mapped_column(sa.Integer)
    cron_expression: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: "skip" (no new job while this schedule's previous one on that agent runs) or "allow".
    overlap_policy: Mapped[str] = mapped_column(sa.String(8), default="skip")
    #: A fire time found later than this many seconds is missed, not run.
    misfire_grace_time: Mapped[int] = mapped_column(sa.Integer, default=300)
    #: Several due fire times within the grace run once (True) or each (False).
    coalesce: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    next_fire: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: {"lock", "concurrency_group", "concurrency_limit"} for every job it creates.
    job_options: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: Fan-out rules for a schedule over several agents (tags, a list).
    max_concurrency: Mapped[str | None] = mapped_column(sa.String(16))
    max_errors: Mapped[str | None] = mapped_column(sa.String(16))
    #: Dead-man's switch: seconds within which some run must succeed.
    expect_success_every: Mapped[int | None] = mapped_column(sa.Integer)
    #: When the open ``schedule.missed`` problem was raised (cleared by a success).
    missed_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_after_failures: Mapped[int | None] = mapped_column(sa.Integer)
    #: Why the hub disabled the schedule (e.g. after N consecutive failures).
    paused_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


    @property
    def run_flow(self) -> str | None:
        """The flow this schedule runs (None for a script schedule)."""
        return self.script if self.kind == "flow" else None

class ScheduleRun(TenantScoped, Base):
    """What happened at one fire time: jobs created, skipped (overlap), missed, failed."""

    __tablename__ = "schedule_runs"
    __table_args__ = (sa.Index("ix_schedule_runs_schedule_fire", "schedule_id", "fire_time"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("schedules.id", ondelete="CASCADE")
    )
    #: The cron time this record is about (for a manual run: when it was asked for).
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    #: "fired", "late", "manual", "skipped", "missed" or "failed".
    outcome: Mapped[str] = mapped_column(sa.String(16))
    job_ids: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    #: A schedule over several agents fires a fan-out.
    fanout_id: Mapped[str | None] = mapped_column(sa.String(32))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
