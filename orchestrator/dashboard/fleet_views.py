"""Agents (status at a glance, paginated for thousands), the Run form, and Metrics."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, redirect, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from orchestrator.dashboard import bp
from orchestrator.dashboard.pages import flash_error, page, query_args
from orchestrator.dashboard.run_form import (
    TARGET_KINDS,
    reference_agent,
    runnables,
    trigger_data,
)
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db
from orchestrator.models import Agent
from orchestrator.schemas.jobs import TriggerSchema
from orchestrator.services import metrics, targets
from orchestrator.services.agent_pages import (
    AGENT_STATUSES,
    agent_status,
    flow_entries,
    page_agents,
    script_entries,
)
from orchestrator.services.fanout import FanoutOutcome

MAX_STATUS_NAMES = 200


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


@bp.route("/agents")
def agents() -> tuple[str, int]:
    filters = query_args("status", "tag", "name")
    if filters.get("status") not in (None, *AGENT_STATUSES):
        filters.pop("status")
    result = page_agents(page=_int_arg("page", 1), **filters)
    return page("agents.html", result=result, filters=filters, statuses=AGENT_STATUSES,
                scripts={a.id: script_entries(a) for a in result.agents},
                flows={a.id: flow_entries(a) for a in result.agents})


@bp.route("/agents/status.json")
def agents_status() -> Response:
    """Live status of the named agents (the visible page's), for the page's refresh loop."""
    names = [n for n in request.args.get("names", "").split(",") if n][:MAX_STATUS_NAMES]
    rows = db.session.execute(db.select(Agent).where(Agent.name.in_(names))).scalars() \
        if names else []
    return jsonify({a.name: {"status": agent_status(a),
                             "last_heartbeat": a.last_heartbeat.isoformat()
                             if a.last_heartbeat else None,
                             "running_jobs": list(a.running_job_ids or [])} for a in rows})


@bp.route("/run", methods=["GET", "POST"])
def run() -> Response | tuple[str, int]:
    source = request.form if request.method == "POST" else request.args
    target = source.get("target", "agent")
    target = target if target in TARGET_KINDS else "agent"
    value = source.get("value", "").strip()
    kind = "flow" if source.get("kind") == "flow" else "script"
    name = source.get("name", "")
    reference = reference_agent(target, value) if value else None
    offered = runnables(reference)
    chosen = next((e for e in offered[kind] if e.get("name") == name), None)
    params = (chosen or {}).get("params") or []
    if request.method == "POST":
        outcome = _trigger(params)
        if outcome is not None:
            return outcome
        status = 422
    else:
        status = 200
    return page("run.html", status, target=target, value=value, kind=kind, name=name,
                reference=reference, offered=offered, chosen=chosen, params=params,
                form=source, agent_names=_agent_names())


def _trigger(params: list[dict[str, Any]]) -> Response | None:
    try:
        data = TriggerSchema().load(trigger_data(request.form, params))
        outcome = targets.trigger(g.principal, data)
    except (ValidationError, ScriptMeshError) as exc:
        flash_error(exc)
        return None
    db.session.commit()
    if isinstance(outcome, FanoutOutcome):
        return redirect(url_for("dashboard.fanout", fanout_id=outcome.fanout.id))
    return redirect(url_for("dashboard.job", job_id=outcome.job.id))


def _agent_names(limit: int = 200) -> list[str]:
    return list(db.session.execute(
        db.select(Agent.name).order_by(Agent.name).limit(limit)).scalars())


@bp.route("/metrics")
def metrics_page() -> tuple[str, int]:
    return page("metrics.html", m=metrics.collect_metrics())
