"""Exactly one job per fire time, however many schedulers race for it (threads and processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Job, Schedule, utcnow
from orchestrator.services import scheduling
from tests.e2e.proc_helpers import process_env
from tests.orchestrator.agent_sim import Workspace, workspace

CHILD = """
import json, sys, time
import sqlalchemy as sa
from orchestrator import create_app
from orchestrator.extensions import db
from orchestrator.services.scheduling import fire_due_schedules
app = create_app()
with app.app_context():
    db.session.execute(sa.text("SELECT 1"))  # connect before the start line
    db.session.rollback()
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    totals = {}
    deadline = time.time() + 1.5
    while time.time() < deadline:
        for outcome, count in fire_due_schedules().items():
            totals[outcome] = totals.get(outcome, 0) + count
print(json.dumps(totals))
"""


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def due_schedules(app: Flask, ws: Workspace, count: int) -> list[str]:
    ws.agent()
    ids = []
    for _ in range(count):
        response = ws.client.post("/schedules", headers=ws.headers, json={
            "agent": "agent-1", "script": "hello.sh", "cron_expression": "0 3 * * *",
            "overlap_policy": "allow"})
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    with app.app_context():
        due = utcnow().replace(microsecond=0) - timedelta(seconds=1)
        for schedule_id in ids:
            db.session.get(Schedule, schedule_id).next_fire = due
        db.session.commit()
    return ids


def jobs_per_schedule(app: Flask) -> dict[str, int]:
    with app.app_context():
        counts: dict[str, int] = {}
        for job in db.session.query(Job).all():
            counts[job.schedule_id] = counts.get(job.schedule_id, 0) + 1
        return counts


def test_two_threads_claiming_one_fire_time_make_one_job(app: Flask, ws: Workspace) -> None:
    (schedule_id,) = due_schedules(app, ws, 1)
    with app.app_context():
        due = db.session.get(Schedule, schedule_id).next_fire
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def claim() -> None:
        with app.app_context():
            barrier.wait()
            outcomes.append(scheduling.fire_schedule(schedule_id, due, utcnow()))

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["fired", "lost"]
    assert jobs_per_schedule(app) == {schedule_id: 1}


@pytest.mark.slow
def test_two_scheduler_processes_fire_each_due_time_once(app: Flask, ws: Workspace,
                                                         hub_env: dict[str, str]) -> None:
    ids = due_schedules(app, ws, 5)
    start_at = str(time.time() + 6)
    env = process_env(hub_env)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, start_at], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert jobs_per_schedule(app) == {schedule_id: 1 for schedule_id in ids}
    assert sum(result.get("fired", 0) for result in results) == 5, results
