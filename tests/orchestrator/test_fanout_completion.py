"""Completing a fan-out without a row-lock convoy: results never queue behind the fan-out lock.

A fan-out without rules is completed after its last result commits
(``fanout_progress.settle_finished_fanouts``), by whichever finisher commits
last; the lock is taken only when no open job is left. Redis and the database
are real; the lock test needs PostgreSQL (SQLite has no row locks).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Event, Fanout, Job, JobStatus, utcnow
from orchestrator.services import fanout_progress, leases
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace

#: A result blocked on the fan-out row would take as long as the test holds the lock.
PROMPT_SECONDS = 5.0


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def started_fanout(ws: Workspace, count: int) -> tuple[str, list[tuple[SimAgent, str]]]:
    """A rule-less fan-out to ``count`` agents, every job started; (fan-out id, [(agent, job)])."""
    agents = [ws.agent(f"node-{i}") for i in range(count)]
    response = ws.client.post("/fanouts", headers=ws.headers,
                              json={"agents": [a.name for a in agents], "run_script": "hello.sh"})
    assert response.status_code == 202, response.json
    return response.json["fanout_id"], [(agent, agent.take()["job_id"]) for agent in agents]


def report(ws: Workspace, fanout_id: str) -> dict[str, Any]:
    response = ws.client.get(f"/fanouts/{fanout_id}", headers=ws.headers)
    assert response.status_code == 200, response.json
    return response.json


def completed_events(app: Flask, fanout_id: str) -> list[Event]:
    with app.app_context():
        return list(db.session.execute(db.select(Event).where(
            Event.type == "fanout.completed", Event.subject == fanout_id)).scalars())


def post_result(app: Flask, agent: SimAgent, job_id: str, codes: list[int]) -> None:
    """Report a result from another thread, with its own test client."""
    sim = SimAgent(app.test_client(), agent.key, agent.name)
    codes.append(sim.result(job_id).status_code)


def test_a_result_does_not_wait_for_the_fanout_row_lock(app: Flask, ws: Workspace,
                                                         database_url: str) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("row locks need PostgreSQL")
    fanout_id, taken = started_fanout(ws, 2)
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    holder = engine.connect()
    try:
        holder.execute(sa.text("SELECT id FROM fanouts WHERE id = :id FOR UPDATE"),
                       {"id": fanout_id})
        codes: list[int] = []
        started = time.monotonic()
        thread = threading.Thread(target=post_result, args=(app, *taken[0], codes))
        thread.start()
        thread.join(PROMPT_SECONDS)
        blocked = thread.is_alive()
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    thread.join()
    assert not blocked, "the result waited for the fan-out row lock"
    assert codes == [200] and time.monotonic() - started < PROMPT_SECONDS
    assert not report(ws, fanout_id)["done"]
    assert taken[1][0].result(taken[1][1]).status_code == 200
    final = report(ws, fanout_id)
    assert final["done"] and final["status"] == "success"
    assert len(completed_events(app, fanout_id)) == 1


def test_concurrent_last_results_complete_the_fanout_once(app: Flask, ws: Workspace) -> None:
    fanout_id, taken = started_fanout(ws, 4)
    codes: list[int] = []
    threads = [threading.Thread(target=post_result, args=(app, agent, job_id, codes))
               for agent, job_id in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 4
    final = report(ws, fanout_id)
    assert final["done"] and final["status"] == "success"
    assert final["counts"]["success"] == 4
    assert len(completed_events(app, fanout_id)) == 1


def test_the_reaper_failing_the_last_job_completes_the_fanout(app: Flask, ws: Workspace) -> None:
    fanout_id, taken = started_fanout(ws, 2)
    assert taken[0][0].result(taken[0][1]).status_code == 200
    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == taken[1][1]).values(
            lease_expires_at=utcnow() - timedelta(seconds=5)))
        db.session.commit()
        assert leases.fail_lost_jobs() == 1
    final = report(ws, fanout_id)
    assert final["done"] and final["status"] == "failed"
    assert len(completed_events(app, fanout_id)) == 1


def test_upkeep_completes_a_fanout_whose_last_finisher_never_settled(app: Flask,
                                                                    ws: Workspace) -> None:
    fanout_id, taken = started_fanout(ws, 2)
    with app.app_context():  # both results committed, the process died before the check
        db.session.execute(sa.update(Job).where(Job.fanout_id == fanout_id).values(
            status=JobStatus.SUCCESS.value, completed_at=utcnow(), lease_expires_at=None))
        db.session.commit()
    assert not report(ws, fanout_id)["done"]
    with app.app_context():
        assert fanout_progress.complete_finished_fanouts() == 1
        assert fanout_progress.complete_finished_fanouts() == 0
        assert db.session.get(Fanout, fanout_id).status == "success"
    assert report(ws, fanout_id)["done"]
    assert len(completed_events(app, fanout_id)) == 1
