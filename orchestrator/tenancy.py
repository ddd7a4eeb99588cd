"""Tenant isolation in one place: every ORM query is filtered by the request's tenant.

``authenticate`` (``orchestrator.security``) stores the caller's tenant on
``flask.g``; the ``do_orm_execute`` hook below (installed by ``create_app``
through ``install_tenant_filter``) then adds
``tenant_id = <that tenant>`` to every SELECT, UPDATE and DELETE that touches
a ``TenantScoped`` model, and ``before_flush`` stamps new rows with it. Views
and services never filter by tenant by hand, so none can forget to.

Outside a request (RQ tasks, the scheduler, the CLI) nothing is filtered:
background work acts for every tenant and names tenants explicitly. A request
that must look across tenants (API key lookup before the tenant is known)
passes ``execution_options(all_tenants=True)``.
"""

from __future__ import annotations

from flask import g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from orchestrator.models.base import TenantScoped


def current_tenant_id() -> str | None:
    """The tenant the current request acts for, or None outside a request."""
    if has_request_context():
        return g.get("tenant_id")
    return None


def install_tenant_filter() -> None:
    """Hook the filter and the stamp into every session (once per process)."""
    for name, hook in (("do_orm_execute", _scope_to_tenant), ("before_flush", _stamp_tenant)):
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)


def _scope_to_tenant(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_tenants"):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
        )
    )


def _stamp_tenant(session: Session, flush_context: object, instances: object) -> None:
    tenant_id = current_tenant_id()
    if tenant_id is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantScoped) and getattr(obj, "tenant_id", None) is None:
            obj.tenant_id = tenant_id
