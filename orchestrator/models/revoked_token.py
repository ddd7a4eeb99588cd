"""Revoked access tokens (logout): the database keeps them, Redis only caches the answer."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.models.base import Base, UTCDateTime, utcnow


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the token would have expired anyway: rows past it can be deleted.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
