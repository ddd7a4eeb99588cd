"""Agents: registration (upsert by name), key binding, liveness and the fleet view.

An agent is online while ``online_until`` lies ahead: every sign of life
(registration, heartbeat, poll) pushes it to now + OFFLINE_AFTER_MISSED x the
agent's heartbeat interval. ``mark_offline_agents`` (run by maintenance)
records the online -> offline transitions; signs of life record the reverse.
Both transitions are conditional UPDATEs, so each becomes exactly one event
however many processes race.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from orchestrator.errors import Conflict, Forbidden, NotFound, ValidationFailed
from orchestrator.extensions import db
from orchestrator.key_cache import API_KEYS_CHANGED
from orchestrator.models import Agent, ApiKey, Scope, utcnow
from orchestrator.security import Principal, hash_api_key
from orchestrator.services import outbox
from orchestrator.services.agent_restarts import end_unlisted_jobs
from orchestrator.services.events import record_event

AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: A poll refreshes liveness at most this often (a heartbeat always does).
POLL_TOUCH_SECONDS = 5.0
ONLINE = "online"
OFFLINE = "offline"


def heartbeat_interval(agent: Agent) -> float:
    """The interval this agent heartbeats at: its own if it reported one, else the hub's."""
    return float(agent.heartbeat_interval or current_app.config["HEARTBEAT_INTERVAL"])


def liveness_window(agent: Agent) -> timedelta:
    """How long after a sign of life the agent still counts as online."""
    return timedelta(seconds=current_app.config["OFFLINE_AFTER_MISSED"] * heartbeat_interval(agent))


def is_online(agent: Agent, now: datetime | None = None) -> bool:
    return agent.is_online(now)


def find_agent(name: str) -> Agent | None:
    """The current tenant's agent called ``name``, or None."""
    return db.session.execute(db.select(Agent).where(Agent.name == name)).scalar_one_or_none()


def get_agent(name: str) -> Agent:
    """The current tenant's agent called ``name``; 404 ``agent_not_found`` otherwise."""
    agent = find_agent(name)
    if agent is None:
        raise NotFound(f"No agent named '{name}' is registered.", error_code="agent_not_found",
                       details={"agent": name})
    return agent


def check_acts_as(principal: Principal, name: str) -> None:
    """An agent-scope key may act only as the agent it is bound to (403 otherwise)."""
    if principal.scope != Scope.AGENT:
        return
    if principal.agent_name is None:
        raise Forbidden("This agent key is not bound to an agent yet: register first "
                        "(POST /register-agent).", error_code="agent_key_unbound")
    if principal.agent_name != name:
        raise Forbidden(f"This API key belongs to agent '{principal.agent_name}' and cannot "
                        f"act as '{name}'.", error_code="agent_name_mismatch",
                        details={"agent": name})


def agent_for_caller(principal: Principal, name: str) -> Agent:
    """The agent a protocol call names, after checking the caller may act as it."""
    check_acts_as(principal, name)
    return get_agent(name)


def register_agent(principal: Principal, data: dict[str, Any],
                   retry: bool = True) -> dict[str, Any]:
    """Create or update the agent ``data["agent_name"]`` and answer the registration.

    An agent-scope key is bound to the name on first registration. A user's
    manual registration (the seed's ``{agent_name, url, api_key, tags}``) may
    name an agent key in ``api_key``: that key is then bound to the agent.
    Liveness counts only for the agent's own registration (it sends a manifest).
    """
    name = data["agent_name"]
    if not AGENT_NAME_RE.match(name):
        raise ValidationFailed("Invalid agent name.", details={"fields": {"agent_name": [
            "Use 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit."]}})
    if principal.scope == Scope.AGENT:
        _bind_caller_key(principal, name, data.get("tags"))
    key_bound = _bind_named_key(data["api_key"], name) if data.get("api_key") else None
    agent = find_agent(name)
    if agent is None:
        agent = Agent(name=name, tenant_id=principal.tenant_id, status=OFFLINE, tags=[],
                      manifest={"scripts": [], "flows": []}, running_job_ids=[])
        db.session.add(agent)
    apply_registration(agent, data)
    if "manifest" in data or principal.scope == Scope.AGENT:
        mark_alive(agent)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        if not retry:
            raise
        return register_agent(principal, data, retry=False)  # a racing first registration won
    answer = {"status": "ok", "agent": agent.name, "agent_id": agent.id,
              "heartbeat_interval": current_app.config["HEARTBEAT_INTERVAL"],
              "poll_wait": current_app.config["POLL_WAIT"]}
    if key_bound is not None:
        answer["api_key_bound"] = key_bound
    if key_bound is False:
        answer["warning"] = ("api_key was ignored: it is not an unrevoked agent-scope key of "
                             "this tenant. The agent process authenticates with its own "
                             "API_KEY.")
    elif "manifest" not in data and principal.scope != Scope.AGENT:
        answer["warning"] = ("Registered by hand: the agent shows offline until its process "
                             "heartbeats or polls.")
    return answer


def apply_registration(agent: Agent, data: dict[str, Any]) -> None:
    """Copy the fields a registration carries onto the row (absent ones are kept)."""
    for field in ("url", "version", "hostname", "workers"):
        if field in data:
            setattr(agent, field, data[field])
    if data.get("tags") is not None:
        agent.tags = sorted(set(data["tags"]))
    apply_report(agent, data, registering=True)


def apply_report(agent: Agent, data: dict[str, Any], registering: bool = False) -> None:
    """Copy what registrations and heartbeats both report: manifest, draining, running jobs.

    The agent's running jobs that it does not list end at once (``agent_restarted``).
    """
    if data.get("manifest") is not None:
        agent.manifest = data["manifest"]
    if "manifest" in data or "manifest_error" in data:
        agent.manifest_error = data.get("manifest_error")
    if data.get("heartbeat_interval"):
        agent.heartbeat_interval = data["heartbeat_interval"]
    if "draining" in data:
        agent.draining = bool(data["draining"])
    if "running_jobs" in data:
        agent.running_job_ids = list(data["running_jobs"])
        end_unlisted_jobs(agent, data["running_jobs"], registering=registering,
                          interval=heartbeat_interval(agent))


def _bind_caller_key(principal: Principal, name: str, tags: list[str] | None) -> None:
    """Bind the calling agent key to ``name`` unless it is bound already (then it must match).

    A name another live key is bound to cannot be claimed (an admin rebinds it
    with ``PATCH /auth/api-keys/{id}``), and the key may register only with the
    tags (pools) it was granted.
    """
    key = db.session.get(ApiKey, principal.api_key_id)
    check_pool_grant(key, tags)
    if key.agent_name is None:
        owner = db.session.execute(
            db.select(ApiKey.id).where(ApiKey.agent_name == name, ApiKey.id != key.id,
                                       ApiKey.revoked_at.is_(None))
        ).scalars().first()
        if owner is not None:
            raise Conflict(f"The agent name '{name}' belongs to another API key. Use that "
                           "agent's key, pick another AGENT_NAME, or ask an admin to rebind "
                           "the name (PATCH /auth/api-keys/{id}).",
                           error_code="agent_name_taken", details={"agent": name})
        if db.session.execute(
            sa.update(ApiKey).where(ApiKey.id == key.id, ApiKey.agent_name.is_(None))
            .values(agent_name=name).execution_options(synchronize_session=False)
        ).rowcount:
            outbox.emit(API_KEYS_CHANGED, {"key_id": key.id})
        bound = db.session.execute(
            db.select(ApiKey.agent_name).where(ApiKey.id == key.id)
        ).scalar_one()
    else:
        bound = key.agent_name
    if bound != name:
        raise Forbidden(f"This API key belongs to agent '{bound}' and cannot register "
                        f"'{name}'.", error_code="agent_name_mismatch", details={"agent": name})


def check_pool_grant(key: ApiKey, tags: list[str] | None) -> None:
    """403 ``tags_not_granted`` for tags the agent key was not granted (``key.pools``)."""
    granted = set(key.pools or ())
    missing = sorted(set(tags or ()) - granted) if "*" not in granted else []
    if missing:
        raise Forbidden(
            f"This agent key may not serve the tags {', '.join(missing)}. Ask an admin to "
            "grant them (PATCH /auth/api-keys/{id} with \"pools\") or remove them from "
            "AGENT_TAGS.", error_code="tags_not_granted",
            details={"tags": missing, "granted": sorted(granted)})


def _bind_named_key(raw_key: str, name: str) -> bool:
    """Bind the tenant's agent key ``raw_key`` to ``name``; False when no such key exists.

    The raw key is only hashed, never stored or echoed.
    """
    key = db.session.execute(
        db.select(ApiKey).where(ApiKey.key_hash == hash_api_key(raw_key))
    ).scalar_one_or_none()
    if key is None or key.scope != Scope.AGENT.value or key.revoked_at is not None:
        return False
    if key.agent_name not in (None, name):
        raise Conflict(f"That API key is already bound to agent '{key.agent_name}'.",
                       error_code="api_key_bound_elsewhere")
    if key.agent_name != name:
        key.agent_name = name
        outbox.emit(API_KEYS_CHANGED, {"key_id": key.id})
    return True


def mark_alive(agent: Agent, now: datetime | None = None) -> None:
    """Record a sign of life; an offline -> online transition records ``agent.online``."""
    now = now or utcnow()
    agent.last_heartbeat = now
    agent.online_until = now + liveness_window(agent)
    if agent.status == ONLINE:
        return
    if agent.id is None or sa.inspect(agent).pending:
        became_online = True
    else:
        became_online = db.session.execute(
            sa.update(Agent).where(Agent.id == agent.id, Agent.status != ONLINE)
            .values(status=ONLINE).execution_options(synchronize_session=False)
        ).rowcount == 1
    agent.status = ONLINE
    if became_online:
        db.session.flush()
        record_event(agent.tenant_id, "agent.online", subject=agent.name,
                     payload={"agent": agent.name, "agent_id": agent.id})


def touch_from_poll(agent: Agent) -> None:
    """A poll is a sign of life too; write it at most every few seconds."""
    now = utcnow()
    resolution = min(POLL_TOUCH_SECONDS, heartbeat_interval(agent))
    if agent.last_heartbeat is None or (now - agent.last_heartbeat).total_seconds() >= resolution:
        mark_alive(agent, now)


def mark_offline_agents(now: datetime | None = None) -> int:
    """Record ``agent.offline`` for every online agent whose liveness window passed."""
    now = now or utcnow()
    candidates = db.session.execute(
        db.select(Agent).where(Agent.status == ONLINE, Agent.online_until < now)
    ).scalars().all()
    changed = 0
    for agent in candidates:
        result = db.session.execute(
            sa.update(Agent).where(Agent.id == agent.id, Agent.status == ONLINE,
                                   Agent.online_until < now)
            .values(status=OFFLINE).execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            record_event(agent.tenant_id, "agent.offline", subject=agent.name,
                         payload={"agent": agent.name, "agent_id": agent.id,
                                  "last_heartbeat": _iso(agent.last_heartbeat)})
            changed += 1
        db.session.commit()
    return changed


def list_agents(tag: str | None = None, status: str | None = None,
                name: str | None = None) -> list[Agent]:
    """The current tenant's agents, by name; optionally only those with ``tag``, in
    ``status`` (online, offline, draining) or whose name contains ``name``."""
    query = db.select(Agent).order_by(Agent.name)
    if name:
        query = query.where(Agent.name.contains(name, autoescape=True))
    found = db.session.execute(query).scalars()
    now = utcnow()
    return [agent for agent in found
            if (not tag or tag in (agent.tags or ()))
            and (not status or _agent_status(agent, now) in _STATUS_MATCHES[status])]


#: Which computed states each ``status`` filter accepts (a draining agent is online too).
_STATUS_MATCHES = {"online": ("online", "draining"), "draining": ("draining",),
                   "offline": ("offline",)}


def _agent_status(agent: Agent, now: datetime) -> str:
    if not agent.is_online(now):
        return "offline"
    return "draining" if agent.draining else "online"


def agent_scripts(name: str) -> dict[str, Any]:
    """What ``name`` may run, from its last reported manifest (404 for an unknown agent)."""
    agent = get_agent(name)
    manifest = agent.manifest or {}
    scripts = [{"name": s.get("name"), "description": s.get("description"),
                "params": s.get("params") or []} for s in manifest.get("scripts", [])]
    return {"agent": agent.name, "scripts": scripts, "flows": manifest.get("flows", [])}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
