"""The audit log: an append-only record of who did what (``GET /audit``).

``record(action, subject, **details)`` adds one row to the caller's
transaction, so an action and its record commit (or roll back) together.
The actor is the request's principal (a user id, with the API key used), or
``system`` for the scheduler and maintenance. Rows are never updated;
``purge_expired`` deletes those older than ``AUDIT_RETENTION_DAYS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context, request

from orchestrator.config import DEFAULT_AUDIT_RETENTION_DAYS
from orchestrator.extensions import db
from orchestrator.models import AuditEntry, utcnow
from orchestrator.tenancy import current_tenant_id

MAX_PAGE = 500


def record(action: str, subject: str | None = None, *, tenant_id: str | None = None,
           actor: str | None = None, **details: Any) -> AuditEntry:
    """Add an audit row for ``action`` on ``subject`` (the caller commits)."""
    principal = g.get("principal") if has_request_context() else None
    kind = "system"
    if actor is None and principal is not None:
        actor = principal.user_id
        kind = "api_key" if principal.api_key_id else "user"
        if principal.api_key_id:
            details.setdefault("api_key_id", principal.api_key_id)
    elif actor is not None:
        kind = "user"
    tenant = tenant_id or (principal.tenant_id if principal else None) or current_tenant_id()
    entry = AuditEntry(tenant_id=tenant, actor=actor or "system", actor_kind=kind,
                       action=action, subject=subject, details=details,
                       ip=request.remote_addr if has_request_context() else None,
                       created_at=utcnow())
    db.session.add(entry)
    return entry


def list_entries(args: dict[str, Any]) -> dict[str, Any]:
    """The tenant's entries, newest first, filtered by action, actor, subject and time;
    ``cursor`` is the last ``id`` of the previous page."""
    limit = min(args.get("limit") or 100, MAX_PAGE)
    query = db.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    for name in ("action", "actor", "subject"):
        if args.get(name):
            query = query.where(getattr(AuditEntry, name) == args[name])
    if args.get("since"):
        query = query.where(AuditEntry.created_at >= args["since"])
    if args.get("until"):
        query = query.where(AuditEntry.created_at < args["until"])
    if args.get("cursor"):
        query = query.where(AuditEntry.id < int(args["cursor"]))
    rows = list(db.session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": rows, "next_cursor": str(rows[-1].id) if more and rows else None}


def purge_expired() -> int:
    """Delete entries older than the retention (a periodic task); returns how many."""
    days = int(current_app.config.get("AUDIT_RETENTION_DAYS") or DEFAULT_AUDIT_RETENTION_DAYS)
    result = db.session.execute(sa.delete(AuditEntry).where(
        AuditEntry.created_at < utcnow() - timedelta(days=days)))
    db.session.commit()
    return result.rowcount
