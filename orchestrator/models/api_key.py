"""API keys: only a keyed hash of the raw ``sm_live_...`` key is stored."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.ids import new_id
from orchestrator.models.base import Base, TenantScoped, UTCDateTime, utcnow


class Scope(enum.StrEnum):
    """What a key may do. ``admin`` > ``operator`` > ``read``; ``agent`` stands apart."""

    ADMIN = "admin"
    OPERATOR = "operator"
    READ = "read"
    AGENT = "agent"


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True,
                                    default=lambda: new_id("api_key"))
    user_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    key_prefix: Mapped[str] = mapped_column(sa.String(32))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scope: Mapped[str] = mapped_column(sa.String(16), default=Scope.OPERATOR.value)
    #: For scope ``agent``: the agent name bound at first registration.
    agent_name: Mapped[str | None] = mapped_column(sa.String(200))
    #: For scope ``agent``: the tags (pools) the key may register with, granted by an
    #: admin or operator, never self-asserted; ``["*"]`` grants every tag.
    pools: Mapped[list[str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
