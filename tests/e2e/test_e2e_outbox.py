"""The outbox end to end: a real worker and scheduler deliver what a Redis flush would lose."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from orchestrator.scheduler import LEADER_KEY
from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import BIN, Proc, process_env, wait_for
from tests.e2e.test_e2e_jobs import trigger, wait_job
from tests.orchestrator.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: The first webhook attempt fails; its retry waits this long, in the database.
RETRY_DELAY = "4"


@pytest.fixture
def background(hub_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[None]:
    """``scriptmesh worker`` and ``scriptmesh scheduler`` as the README runs them."""
    redis.Redis.from_url(redis_url).delete(LEADER_KEY)
    env = process_env(hub_env, WEBHOOK_RETRY_DELAYS=RETRY_DELAY, SCRIPTMESH_LEADER_TTL="2")
    procs = [Proc([str(BIN / "scriptmesh"), name], env, tmp_path / f"{name}.log")
             for name in ("worker", "scheduler")]
    yield
    for proc in procs:
        proc.stop()


def test_a_redis_flush_loses_no_webhook_retry_notification_or_pending_job(
        app: Flask, background: None, start_hub: Callable[..., LiveHub],
        operator: dict[str, Any], start_agent: Callable[..., AgentProc],
        redis_url: str) -> None:
    hub = start_hub(WEBHOOK_RETRY_DELAYS=RETRY_DELAY)
    token = operator["token"]
    agent = start_agent("steady", operator["agent_key"](), hub)
    with Receiver(statuses=(503,)) as receiver, Receiver() as notified:
        user_jwt = operator["headers"]["Authorization"].removeprefix("Bearer ")
        status, _ = hub.call("POST", "/integrations", user_jwt, {
            "type": "webhook", "name": "ops", "secrets": {"secret": "s3cret"},
            "config": {"url": notified.url + "/notify", "events": ["job.succeeded"]}})
        assert status == 201
        job_id = trigger(hub, token, agent.name, "hello.sh", webhook_url=receiver.url + "/hook")
        assert wait_job(hub, token, job_id)["status"] == "success"
        wait_for(lambda: receiver.paths().count("/hook") == 1, 20, what="the first attempt")

        agent.stop()
        waiting = trigger(hub, token, agent.name, "hello.sh")
        redis.Redis.from_url(redis_url).flushdb()  # the retry and the queued job only in the DB
        agent.start()

        assert wait_job(hub, token, waiting, timeout=40)["status"] == "success", \
            "the pending job was pushed again"
        wait_for(lambda: receiver.paths().count("/hook") >= 2, 40, what="the webhook retry")
        wait_for(lambda: notified.paths().count("/notify") >= 2, 40,
                 what="both jobs' notifications")
    _, deliveries = hub.call("GET", f"/jobs/{job_id}/deliveries", token)
    attempts = [d["attempt"] for d in deliveries["deliveries"] if d["kind"] == "webhook"]
    assert attempts[:2] == [1, 2]
