"""Agents: one row per registered agent name in a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class Agent(TenantScoped, Base):
    __tablename__ = "agents"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name", name="uq_agents_tenant_name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("agent"))
    name: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str | None] = mapped_column(sa.String(500))
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    version: Mapped[str | None] = mapped_column(sa.String(50))
    hostname: Mapped[str | None] = mapped_column(sa.String(255))
    workers: Mapped[int | None] = mapped_column(sa.Integer)
    #: The manifest as the agent last reported it: {"scripts": [...], "flows": [...]}.
    manifest: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    manifest_error: Mapped[str | None] = mapped_column(sa.Text)
    #: "online" or "offline": the last recorded state, so transitions become events.
    status: Mapped[str] = mapped_column(sa.String(16), default="offline")
    draining: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: Paused by an operator (``POST /agents/{name}/pause``): no new jobs until resumed
    #: (or until ``paused_until``); running ones finish.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_note: Mapped[str | None] = mapped_column(sa.Text)
    paused_by: Mapped[str | None] = mapped_column(sa.String(32))
    #: ``POST /agents/{name}/drain``: paused, and deregistered once it runs nothing.
    drain_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    running_job_ids: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The interval the agent says it heartbeats at (None: the hub's HEARTBEAT_INTERVAL).
    heartbeat_interval: Mapped[float | None] = mapped_column(sa.Float)
    #: The agent counts as online until this instant (last sign of life + allowed misses).
    online_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def is_online(self, now: datetime | None = None) -> bool:
        """Online while the last sign of life is recent enough (see ``online_until``)."""
        return self.online_until is not None and self.online_until > (now or utcnow())

    def is_paused(self, now: datetime | None = None) -> bool:
        """Paused by an operator (a pause with ``paused_until`` ends by itself)."""
        if self.paused_at is None:
            return False
        return self.paused_until is None or self.paused_until > (now or utcnow())

    def script_names(self) -> list[str]:
        return [entry.get("name") for entry in (self.manifest or {}).get("scripts", [])]

    def flow_names(self) -> list[str]:
        return [entry.get("name") for entry in (self.manifest or {}).get("flows", [])
                if isinstance(entry, dict)]
