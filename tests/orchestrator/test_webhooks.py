"""Completion webhooks: signed delivery of the full job result, retries, records, guard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.extensions import db
from orchestrator.models import Job, OutboxMessage, Schedule, utcnow
from orchestrator.queues import background_queue
from orchestrator.services import lifecycle, outbox, scheduling
from orchestrator.services.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.orchestrator.agent_sim import Workspace, workspace
from tests.orchestrator.receiver import Receiver, run_background_jobs


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def make_due(app: Flask, schedule_id: str) -> None:
    with app.app_context():
        schedule = db.session.get(Schedule, schedule_id)
        schedule.next_fire = utcnow().replace(microsecond=0) - timedelta(seconds=1)
        db.session.commit()


def headers_of(request: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def test_due_schedule_job_result_reaches_receiver_signed(app: Flask, client: FlaskClient,
                                                          ws: Workspace) -> None:
    sim = ws.agent()
    created = client.post("/settings/webhook-secret", headers=ws.user["headers"])
    assert created.status_code == 201
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    with Receiver() as receiver:
        response = client.post("/schedules", headers=ws.headers, json={
            "agent": "agent-1", "script": "backup.sh", "cron_expression": "0 2 * * *",
            "params": {"target": "s3://my-bucket"}, "timeout": 600,
            "webhook_url": receiver.url + "/job-done"})
        assert response.status_code == 201, response.json
        make_due(app, response.json["id"])
        with app.app_context():
            assert scheduling.fire_due_schedules() == {"fired": 1}
        job_id = sim.take()["job_id"]
        assert sim.result(job_id, "success", stdout="archived\n").status_code == 200
        assert receiver.requests == [], "never delivered on the request path"
        run_background_jobs(app)

        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        headers = headers_of(request)
        assert request.method == "POST" and request.path == "/job-done"
        assert headers["content-type"] == "application/json"
        assert headers["x-scriptmesh-event"] == "job.succeeded"
        assert verify_signature(secret, headers[TIMESTAMP_HEADER.lower()], request.body,
                                headers[SIGNATURE_HEADER.lower()])
        assert not verify_signature("whsec_wrong", headers[TIMESTAMP_HEADER.lower()],
                                    request.body, headers[SIGNATURE_HEADER.lower()])
        assert request.json == ws.job(job_id), "the same JSON as GET /jobs/{id}"
        assert request.json["status"] == "success"


def test_failing_receiver_gets_the_third_attempt(app: Flask, client: FlaskClient,
                                                 ws: Workspace) -> None:
    app.config["WEBHOOK_RETRY_DELAYS"] = "0,0,0,0"
    sim = ws.agent()
    with Receiver(statuses=(500, 502)) as receiver:
        job_id = ws.trigger_id(script="fail.sh", webhook_url=receiver.url + "/hook")
        sim.take(job_id)
        sim.result(job_id, "failed", stderr="boom")
        run_background_jobs(app)
        assert len(receiver.requests) == 3
        assert all(r.json["job_id"] == job_id for r in receiver.requests)

    deliveries = client.get(f"/jobs/{job_id}/deliveries", headers=ws.headers)
    assert deliveries.status_code == 200
    webhook = [d for d in deliveries.json["deliveries"] if d["kind"] == "webhook"]
    assert [(d["attempt"], d["status_code"], d["success"]) for d in webhook] == [
        (1, 500, False), (2, 502, False), (3, 200, True)]
    assert webhook[0]["error"] == "HTTP 500" and webhook[2]["error"] is None
    assert webhook[0]["next_retry_at"] and webhook[2]["next_retry_at"] is None
    assert all(d["duration_ms"] >= 0 and d["created_at"].endswith("Z") for d in webhook)
    assert webhook[0]["target"] == receiver.url and webhook[0]["event_type"] == "job.failed"


def test_retry_waits_with_backoff_in_the_outbox(app: Flask, ws: Workspace) -> None:
    sim = ws.agent()
    with Receiver(statuses=(503, 200)) as receiver:
        job_id = ws.trigger_id(webhook_url=receiver.url)
        sim.take(job_id)
        sim.result(job_id)
        started = utcnow()
        run_background_jobs(app)
        assert len(receiver.requests) == 1
        with app.app_context():
            (retry,) = db.session.execute(db.select(OutboxMessage).where(
                OutboxMessage.subscriber == "webhook")).scalars()
            delay = (retry.available_at - started).total_seconds()
            assert 10 <= delay <= 20, "first retry after WEBHOOK_RETRY_DELAYS[0] = 15 s"
            assert retry.attempts == 1 and retry.payload["job_id"] == job_id
            assert retry.last_error == "HTTP 503" and retry.claimed_until is None
            # The retry lives in the database: a Redis flush loses nothing.
            app.extensions["scriptmesh.redis"]["connection"].flushdb()
            retry.available_at = utcnow()
            db.session.commit()
        run_background_jobs(app)
        assert len(receiver.requests) == 2, "the retry survived the flush"
    with app.app_context():
        assert outbox.pending_count(["webhook"]) == 0, "delivered rows are deleted"


def test_nothing_is_queued_when_the_transaction_rolls_back(app: Flask, ws: Workspace) -> None:
    ws.agent()
    job_id = ws.trigger_id(webhook_url="https://hooks.example.com/x")
    with app.app_context():
        queue = background_queue()
        queue.empty()
        job = db.session.get(Job, job_id)
        assert lifecycle.finish_job(job, "failed")
        db.session.rollback()
        assert queue.count == 0 and outbox.pending_count(["webhook"]) == 0
        job = db.session.get(Job, job_id)
        assert lifecycle.finish_job(job, "failed")
        db.session.commit()
        names = [j.func_name for j in queue.get_jobs()]
        assert "orchestrator.services.outbox.deliver_messages" in names
        assert outbox.pending_count(["webhook"]) == 1


def test_private_targets_refused_when_guard_is_on(app: Flask, client: FlaskClient,
                                                  ws: Workspace) -> None:
    app.config["WEBHOOK_BLOCK_PRIVATE"] = True
    sim = ws.agent()
    response = client.post("/schedules", headers=ws.headers, json={
        "agent": "agent-1", "script": "hello.sh", "cron_expression": "* * * * *",
        "webhook_url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 422
    assert "webhook_url" in response.json["error"]["details"]["fields"]

    job_id = ws.trigger_id(webhook_url="http://10.1.2.3/hook")
    sim.take(job_id)
    sim.result(job_id)
    run_background_jobs(app)
    (delivery,) = client.get(f"/jobs/{job_id}/deliveries", headers=ws.headers).json["deliveries"]
    assert delivery["success"] is False and delivery["error"].startswith("blocked:")
    assert delivery["next_retry_at"] is None, "a blocked target is not retried"


def test_signing_secret_is_shown_once_and_rotates(client: FlaskClient, ws: Workspace) -> None:
    headers = ws.user["headers"]
    assert client.get("/settings/webhook-secret", headers=headers).json["configured"] is False
    first = client.post("/settings/webhook-secret", headers=headers).json["secret"]
    info = client.get("/settings/webhook-secret", headers=headers)
    assert info.json["configured"] is True and first not in info.get_data(as_text=True)
    again = client.post("/settings/webhook-secret", headers=headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "webhook_secret_exists"
    rotated = client.post("/settings/webhook-secret/rotate", headers=headers)
    assert rotated.status_code == 200
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != first
    assert rotated.json["rotated_at"].endswith("Z")
    operator = client.post("/settings/webhook-secret/rotate", headers=ws.headers)
    assert operator.status_code == 403


def test_deliveries_of_another_tenants_job_are_404(client: FlaskClient, ws: Workspace,
                                                   make_user: Any) -> None:
    ws.agent()
    job_id = ws.trigger_id()
    stranger = make_user()
    response = client.get(f"/jobs/{job_id}/deliveries", headers=stranger["headers"])
    assert response.status_code == 404
    assert response.json["error"]["code"] == "job_not_found"
