"""GET /metrics: Prometheus text computed from the database (same answer on every worker)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import create_app
from orchestrator.extensions import db
from orchestrator.models import Delivery, Job
from tests.conftest import base_config
from tests.orchestrator.agent_sim import Workspace, workspace


@pytest.fixture
def ws(client: FlaskClient, make_user: Any, make_api_key: Any) -> Workspace:
    return workspace(client, make_user, make_api_key)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client: FlaskClient, headers: dict[str, str]) -> dict[Any, float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return samples(response.get_data(as_text=True))


def test_metrics_reflect_jobs_agents_latency_and_webhook_failures(
        app: Flask, client: FlaskClient, ws: Workspace, make_user: Any,
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    sim = ws.agent()
    done = ws.trigger_id()
    sim.take(done)
    sim.result(done)
    ws.trigger_id()
    with app.app_context():
        job = db.session.get(Job, done)
        job.dispatched_at = job.created_at + timedelta(seconds=2)
        db.session.add(Delivery(tenant_id=job.tenant_id, kind="webhook", job_id=done,
                                attempt=1, success=False, error="HTTP 500"))
        db.session.commit()

    found = scrape(client, ws.headers)
    assert found[("scriptmesh_jobs", (("status", "success"),))] == 1
    assert found[("scriptmesh_jobs", (("status", "pending"),))] == 1
    assert found[("scriptmesh_jobs", (("status", "failed"),))] == 0
    assert found[("scriptmesh_agents_online", ())] == 1
    assert found[("scriptmesh_dispatch_latency_seconds_count", ())] == 1
    assert found[("scriptmesh_dispatch_latency_seconds_bucket", (("le", "1.0"),))] == 0
    assert found[("scriptmesh_dispatch_latency_seconds_bucket", (("le", "2.5"),))] == 1
    assert found[("scriptmesh_webhook_failures_total", ())] == 1

    # Another worker process (a second app) answers the same: nothing lives in memory.
    other_worker = create_app(base_config(database_url, redis_url, tmp_path / "w2"))
    assert scrape(other_worker.test_client(), ws.headers) == found

    stranger = scrape(client, make_user()["headers"])
    assert stranger[("scriptmesh_jobs", (("status", "success"),))] == 0
    assert stranger[("scriptmesh_agents_online", ())] == 0


def test_metrics_need_a_token(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
