"""HubClient against a real HTTP peer: payloads, headers and error classification."""

from __future__ import annotations

import socket

import pytest

from agent.client import AuthRejected, HubClient, HubError, HubUnavailable, JobRejected
from agent.log_streamer import LogStreamer

from .conftest import API_KEY, StubHub, wait_for


@pytest.fixture
def client(hub: StubHub) -> HubClient:
    return HubClient(hub.url + "/", API_KEY, "edge-1")


def test_register_sends_bearer_key_and_agent_name(client: HubClient, hub: StubHub):
    answer = client.register({"tags": ["a"], "version": "0.1.0", "workers": 2})
    assert answer["agent_id"] == "agt_1"
    path, body, headers = hub.requests[0]
    assert path == "/register-agent"
    assert body == {"agent_name": "edge-1", "tags": ["a"], "version": "0.1.0", "workers": 2}
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Content-Type"] == "application/json"


def test_heartbeat_returns_commands(client: HubClient, hub: StubHub):
    hub.commands.append({"type": "cancel", "job_id": "job_1"})
    commands = client.heartbeat({"scripts": [], "flows": []}, None, ["job_1"], False)
    assert commands == [{"type": "cancel", "job_id": "job_1"}]
    assert hub.bodies("/agent/heartbeat")[0]["running_jobs"] == ["job_1"]


def test_poll_returns_jobs(client: HubClient, hub: StubHub):
    hub.add_job("job_9", "hello.sh")
    assert [j["job_id"] for j in client.poll(max_jobs=3, wait=1)] == ["job_9"]
    assert hub.bodies("/agent/poll")[0] == {"agent_name": "edge-1", "max_jobs": 3, "wait": 1}


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retryable_statuses(client: HubClient, hub: StubHub, status: int):
    hub.forced_status["/"] = status
    with pytest.raises(HubUnavailable) as info:
        client.poll(1, 0)
    assert info.value.status == status


def test_401_is_auth_rejected_everywhere(client: HubClient, hub: StubHub):
    hub.forced_status["/"] = 401
    with pytest.raises(AuthRejected):
        client.heartbeat({}, None, [], False)
    with pytest.raises(AuthRejected):
        client.report_result("job_1", {})


def test_403_means_auth_on_agent_endpoints_but_job_rejected_on_jobs(client, hub: StubHub):
    hub.forced_status["/"] = 403
    with pytest.raises(AuthRejected):
        client.register({})
    with pytest.raises(JobRejected):
        client.start_job("job_1")


def test_409_on_start_is_job_rejected_with_code(client: HubClient, hub: StubHub):
    hub.forced_status["/agent/jobs/job_1/start"] = 409
    with pytest.raises(JobRejected) as info:
        client.start_job("job_1")
    assert info.value.status == 409 and info.value.code == "forced"


def test_other_4xx_on_agent_endpoint_is_hub_error(client: HubClient, hub: StubHub):
    hub.forced_status["/agent/heartbeat"] = 404
    with pytest.raises(HubError) as info:
        client.heartbeat({}, None, [], False)
    assert info.value.status == 404 and not isinstance(info.value, HubUnavailable)


def test_connection_refused_is_unavailable_and_never_shows_the_key():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HubClient(f"http://127.0.0.1:{port}", API_KEY, "edge-1")
    with pytest.raises(HubUnavailable) as info:
        client.poll(1, 0)
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(client.__dict__.get("base_url"))


def test_log_streamer_offsets_survive_failed_uploads(client: HubClient, hub: StubHub):
    stdout, stderr = [""], [""]
    hub.forced_status["/agent/jobs/job_s/output"] = 503

    def upload(chunk: dict) -> bool:
        try:
            client.upload_output("job_s", chunk)
            return True
        except HubUnavailable:
            return False

    streamer = LogStreamer(
        {"stdout": lambda o: stdout[0][o:], "stderr": lambda o: stderr[0][o:]},
        upload,
        interval=0.05,
    ).start()
    stdout[0] = "line 1\n"
    wait_for(lambda: len(hub.bodies("/agent/jobs/job_s/output")) >= 2)
    assert streamer.offsets == {"stdout": 0, "stderr": 0}, "failed uploads keep the offsets"
    del hub.forced_status["/agent/jobs/job_s/output"]
    wait_for(lambda: streamer.offsets["stdout"] == 7)
    stdout[0] += "line 2\n"
    stderr[0] = "oops\n"
    wait_for(lambda: streamer.offsets == {"stdout": 14, "stderr": 5})
    streamer.stop()
    bodies = hub.bodies("/agent/jobs/job_s/output")
    assert all(b["stdout"]["offset"] == 0 for b in bodies[:2])
    assert hub.outputs["job_s"] == {"stdout": "line 1\nline 2\n", "stderr": "oops\n"}
    assert {"offset": 7, "data": "line 2\n"} in [b["stdout"] for b in bodies]
    assert all(b["agent_name"] == "edge-1" for b in bodies)
