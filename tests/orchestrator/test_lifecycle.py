"""The job lifecycle: the transition table, and every finish path reaching every subscriber."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Job, JobStatus, utcnow
from orchestrator.services import dispatch, leases, lifecycle, outbox
from tests.orchestrator.agent_sim import SimAgent, Workspace, workspace
from tests.orchestrator.receiver import Receiver, run_background_jobs

EVENTS = ["job.succeeded", "job.failed", "job.timeout", "job.cancelled", "job.expired"]


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def test_transition_table_allows_only_forward_moves() -> None:
    assert lifecycle.may_move("pending", "running")
    assert lifecycle.may_move("running", "success")
    assert not lifecycle.may_move("running", "pending")
    assert not lifecycle.may_move("running", "expired"), "a started job cannot expire"
    for terminal in lifecycle.STATUS_EVENTS:
        assert all(not lifecycle.may_move(terminal, s) for s in JobStatus), terminal
    assert set(lifecycle.sources("expired")) == {"pending"}


def test_a_finished_job_cannot_be_finished_again(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    job_id = ws.trigger_id()
    sim.take(job_id)
    sim.result(job_id, "success")
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert not lifecycle.finish_job(job, "failed", error="late")
        db.session.commit()
        assert db.session.get(Job, job_id).status == "success"
        with pytest.raises(ValueError):
            lifecycle.finish_job(job, "running")


def _age(app: Flask, job_id: str, **columns: Any) -> None:
    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(**columns))
        db.session.commit()


def by_result(status: str) -> Callable[[Flask, Workspace, SimAgent, str], None]:
    def finish(_app: Flask, _ws: Workspace, sim: SimAgent, job_id: str) -> None:
        sim.take(job_id)
        assert sim.result(job_id, status, exit_code=0 if status == "success" else 1
                          ).status_code == 200
    return finish


def by_cancel(_app: Flask, ws: Workspace, _sim: SimAgent, job_id: str) -> None:
    assert ws.client.post(f"/jobs/{job_id}/cancel", headers=ws.headers).status_code == 200


def by_loss(app: Flask, _ws: Workspace, sim: SimAgent, job_id: str) -> None:
    sim.take(job_id)
    _age(app, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    with app.app_context():
        assert leases.fail_lost_jobs() == 1


def by_expiry(app: Flask, _ws: Workspace, _sim: SimAgent, job_id: str) -> None:
    _age(app, job_id, expires_at=utcnow() - timedelta(seconds=1))
    with app.app_context():
        assert leases.expire_queued_jobs() == 1


FINISH_PATHS = {
    "result": (by_result("success"), "success", "job.succeeded"),
    "timeout": (by_result("timeout"), "timeout", "job.timeout"),
    "cancel": (by_cancel, "cancelled", "job.cancelled"),
    "lost": (by_loss, "failed", "job.failed"),
    "expired": (by_expiry, "expired", "job.expired"),
}


@pytest.mark.parametrize("path", list(FINISH_PATHS))
def test_every_finish_path_reaches_every_subscriber(app: Flask, client: FlaskClient,
                                                    ws: Workspace, path: str) -> None:
    finish, status, event = FINISH_PATHS[path]
    sim = ws.agent()
    with Receiver() as receiver:
        created = client.post("/integrations", headers=ws.user["headers"], json={
            "type": "webhook", "name": "all-jobs",
            "config": {"url": receiver.url + "/notify", "events": EVENTS},
            "secrets": {"secret": "s3cret"}})
        assert created.status_code == 201, created.json
        fanout = client.post("/fanouts", headers=ws.headers, json={
            "agents": ["agent-1"], "run_script": "hello.sh",
            "webhook_url": receiver.url + "/hook"})
        assert fanout.status_code == 202, fanout.json
        fanout_id = fanout.json["fanout_id"]
        (job_id,) = [j["job_id"] for j in fanout.json["jobs"]]

        waiter: dict[str, Any] = {}

        def wait() -> None:
            with app.app_context():
                waiter["job"] = dispatch.wait_for_finish(job_id, 20).status
        thread = threading.Thread(target=wait)
        thread.start()

        finish(app, ws, sim, job_id)
        thread.join(10)
        assert waiter.get("job") == status, "the synchronous waiter woke with the result"
        assert ws.job(job_id)["status"] == status

        run_background_jobs(app)
        hooks = [r for r in receiver.requests if r.path == "/hook"]
        notes = [r for r in receiver.requests if r.path == "/notify"]
        assert len(hooks) == 1 and hooks[0].headers["X-ScriptMesh-Event"] == event
        assert hooks[0].json["job_id"] == job_id and hooks[0].json["status"] == status
        assert [n.json["event"]["type"] if "event" in n.json else n.json.get("type")
                for n in notes] == [event], [n.json for n in notes]

    progress = client.get(f"/fanouts/{fanout_id}", headers=ws.headers).json
    assert progress["done"] is True and progress["counts"][status] == 1
    with app.app_context():
        assert outbox.pending_count() == 0, "every outbox row was delivered and deleted"
