"""Benchmark: server time of the dashboard's biggest pages, against a 300 ms budget.

Run by hand: ``.venv/bin/python -m tests.benchmarks.bench_dashboard`` (``BENCH_AGENTS``,
``BENCH_FANOUT_JOBS`` change the sizes; ``DATABASE_URL`` / ``REDIS_URL`` run it on
PostgreSQL and a Redis server). A tenant gets 5,000 agents (each with the example
manifest, tags and a recent heartbeat) and one finished fan-out of 1,000 jobs with
three distinct results; the pages are requested in-process through the app's own WSGI
stack with a signed-in cookie session, so what is timed is the hub's work (queries,
templates), not the network. Exit 1 when a page's p95 exceeds the budget.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from tests.benchmarks.harness import Backend, Table, ms, percentile

AGENTS = int(os.environ.get("BENCH_AGENTS", "5000"))
FANOUT_JOBS = int(os.environ.get("BENCH_FANOUT_JOBS", "1000"))
BUDGET_SECONDS = 0.300
ROUNDS = 15
PASSWORD = "bench password 1234"
MANIFEST = json.loads((Path(__file__).resolve().parents[2] / "manifests"
                       / "script_manifest.json").read_text())


def seed(app: object) -> tuple[str, str]:
    """A user, its fleet and one fan-out; returns (email, fanout id)."""
    from orchestrator.extensions import db
    from orchestrator.ids import new_id
    from orchestrator.models import Agent, Fanout, Job, utcnow
    from orchestrator.services import accounts

    with app.app_context():  # type: ignore[attr-defined]
        user = accounts.create_user("bench@dashboard.example", PASSWORD, verified=True)
        tenant = user.tenant_id
        now = utcnow()
        db.session.bulk_insert_mappings(Agent, [{
            "id": new_id("agent"), "tenant_id": tenant, "name": f"node-{i:05d}",
            "tags": ["bench", f"rack-{i % 40}"] + (["canary"] if i % 100 == 0 else []),
            "version": "0.1.0", "hostname": f"host-{i}", "manifest": MANIFEST,
            "status": "online", "draining": i % 250 == 0, "running_job_ids": [],
            "last_heartbeat": now, "registered_at": now,
            "online_until": now + timedelta(minutes=5) if i % 10 else now - timedelta(1),
        } for i in range(AGENTS)])
        fanout_id = new_id("fanout")
        db.session.add(Fanout(id=fanout_id, tenant_id=tenant, script="deploy.sh",
                              total=FANOUT_JOBS, status="failed", stages=[{"agents": []}]))
        outputs = [("success", 0, "→ Deploying v2.4.1\n✓ v2.4.1 is live\n"),
                   ("failed", 4, "deploy of v2.4.1 failed: disk full\n"),
                   ("timeout", None, "→ Deploying v2.4.1\n")]
        db.session.bulk_insert_mappings(Job, [{
            "id": new_id("job"), "tenant_id": tenant, "agent_name": f"node-{i:05d}",
            "script": "deploy.sh", "fanout_id": fanout_id, "fanout_seq": i,
            "fanout_stage": 0, "status": outputs[0 if i % 50 else 1 + i % 2][0],
            "exit_code": outputs[0 if i % 50 else 1 + i % 2][1],
            "stdout": outputs[0 if i % 50 else 1 + i % 2][2], "duration_ms": 800 + i % 97,
            "created_at": now, "completed_at": now,
        } for i in range(FANOUT_JOBS)])
        db.session.commit()
        return user.email, fanout_id


def drop_everything() -> None:
    """Every table of the database (the benchmark's own tenant data included)."""
    import sqlalchemy as sa

    from orchestrator.extensions import db

    metadata = sa.MetaData()
    metadata.reflect(bind=db.engine)
    metadata.drop_all(bind=db.engine)


def sign_in(client: object, email: str) -> None:
    page = client.get("/ui/sign-in").get_data(as_text=True)  # type: ignore[attr-defined]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/ui/sign-in", data={  # type: ignore[attr-defined]
        "email": email, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]


def time_page(client: object, path: str) -> list[float]:
    client.get(path)  # type: ignore[attr-defined] - warm caches and the template
    took = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        answer = client.get(path)  # type: ignore[attr-defined]
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code)
    return took


def main() -> int:
    from flask_migrate import upgrade

    from orchestrator import create_app
    from orchestrator.extensions import db
    from tests.conftest import TEST_SECRETS

    with tempfile.TemporaryDirectory() as workdir:
        backend = Backend(Path(workdir)).start()
        app = create_app({"TESTING": True, "DATA_DIR": workdir, **TEST_SECRETS,
                          "SQLALCHEMY_DATABASE_URI": backend.database_url,
                          "REDIS_URL": backend.redis_url, "RATELIMIT_ENABLED": False})
        try:
            with app.app_context():
                drop_everything()  # a database a previous run left behind
                upgrade()
            email, fanout_id = seed(app)
            client = app.test_client()
            sign_in(client, email)
            pages = {f"agents page 1 of {AGENTS}": "/ui/agents",
                     "agents filtered (tag + status)": "/ui/agents?tag=canary&status=online",
                     f"agents last page of {AGENTS}": f"/ui/agents?page={AGENTS // 50}",
                     f"fan-out of {FANOUT_JOBS} jobs": f"/ui/fanouts/{fanout_id}",
                     f"fan-out {FANOUT_JOBS} live JSON": f"/ui/fanouts/{fanout_id}.json"}
            table = Table("Dashboard server time", f"{backend.describe()}, in-process WSGI "
                          f"with a cookie session, {ROUNDS} requests per page; floor = the "
                          "300 ms budget (p95)")
            failed = []
            for label, path in pages.items():
                took = time_page(client, path)
                p95 = percentile(took, 95)
                table.add(label, f"p50 {ms(percentile(took, 50))}, p95 {ms(p95)}",
                          ms(BUDGET_SECONDS), "ok" if p95 <= BUDGET_SECONDS else "OVER")
                if p95 > BUDGET_SECONDS:
                    failed.append(label)
            table.print()
            return 1 if failed else 0
        finally:
            with app.app_context():
                db.session.remove()
                drop_everything()
            backend.stop()


if __name__ == "__main__":
    sys.exit(main())
