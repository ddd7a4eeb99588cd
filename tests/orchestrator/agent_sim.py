"""An agent simulated through the HTTP test client: the calls of ``agent/protocol.py``.

Hub tests drive the protocol endpoints with it exactly as the agent program
would, without starting processes (the e2e tests run the real agent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

SCRIPTS = ("hello.sh", "fail.sh", "sleep.sh", "backup.sh")


def manifest(scripts: Iterable[str] = SCRIPTS) -> dict[str, Any]:
    """A manifest declaring no params but accepting undeclared ones (hub tests' params pass)."""
    return {"scripts": [{"name": n, "description": f"{n} for tests"} for n in scripts],
            "flows": [], "allow_undeclared_params": True}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class SimAgent:
    """One agent speaking the protocol with its own key."""

    client: FlaskClient
    key: str
    name: str = "agent-1"
    scripts: tuple[str, ...] = SCRIPTS

    def post(self, path: str, body: dict[str, Any]) -> TestResponse:
        return self.client.post(path, json=body, headers=bearer(self.key))

    def register(self, **extra: Any) -> TestResponse:
        body = {"agent_name": self.name, "tags": ["test"], "version": "0.1.0", "workers": 2,
                "hostname": "sim-host", "manifest": manifest(self.scripts),
                "manifest_error": None, **extra}
        return self.post("/register-agent", body)

    def heartbeat(self, running: Iterable[str] = (), **extra: Any) -> TestResponse:
        body = {"agent_name": self.name, "manifest": manifest(self.scripts),
                "manifest_error": None, "running_jobs": list(running), "draining": False,
                **extra}
        return self.post("/agent/heartbeat", body)

    def poll(self, wait: float = 0, max_jobs: int = 1) -> TestResponse:
        return self.post("/agent/poll", {"agent_name": self.name, "max_jobs": max_jobs,
                                         "wait": wait})

    def poll_jobs(self, wait: float = 0, max_jobs: int = 1) -> list[dict[str, Any]]:
        response = self.poll(wait, max_jobs)
        assert response.status_code == 200, response.json
        return response.json["jobs"]

    def start(self, job_id: str) -> TestResponse:
        return self.post(f"/agent/jobs/{job_id}/start", {"agent_name": self.name})

    def output(self, job_id: str, stdout: tuple[int, str] | None = None,
               stderr: tuple[int, str] | None = None) -> TestResponse:
        body: dict[str, Any] = {"agent_name": self.name}
        for stream, chunk in (("stdout", stdout), ("stderr", stderr)):
            if chunk is not None:
                body[stream] = {"offset": chunk[0], "data": chunk[1]}
        return self.post(f"/agent/jobs/{job_id}/output", body)

    def result(self, job_id: str, status: str = "success", **extra: Any) -> TestResponse:
        body = {"agent_name": self.name, "status": status,
                "exit_code": 0 if status == "success" else 1, "stdout": "", "stderr": "",
                "truncated": {"stdout": False, "stderr": False}, "duration_ms": 12,
                "started_at": "2026-01-01T00:00:00Z", "error": None, **extra}
        return self.post(f"/agent/jobs/{job_id}/result", body)

    def take(self, job_id: str | None = None) -> dict[str, Any]:
        """Poll one job and acknowledge its start; return the assignment."""
        jobs = self.poll_jobs()
        assert len(jobs) == 1, jobs
        assert job_id is None or jobs[0]["job_id"] == job_id
        assert self.start(jobs[0]["job_id"]).status_code == 200
        return jobs[0]


@dataclass
class Workspace:
    """A tenant with a user (JWT headers), an operator key and agent keys on demand."""

    client: FlaskClient
    user: dict[str, Any]
    operator_key: str
    new_key: Callable[..., str]
    agents: list[SimAgent] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.operator_key)

    def agent(self, name: str = "agent-1", register: bool = True, **kwargs: Any) -> SimAgent:
        sim = SimAgent(self.client, self.new_key(self.user["user_id"], scope="agent"), name,
                       **kwargs)
        if register:
            response = sim.register()
            assert response.status_code == 200, response.json
        self.agents.append(sim)
        return sim

    def trigger(self, agent: str = "agent-1", script: str = "hello.sh",
                **extra: Any) -> TestResponse:
        body = {"agent": agent, "run_script": script, **extra}
        return self.client.post("/trigger-script", json=body, headers=self.headers)

    def trigger_id(self, agent: str = "agent-1", script: str = "hello.sh", **extra: Any) -> str:
        response = self.trigger(agent, script, **extra)
        assert response.status_code == 202, response.json
        return response.json["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.json
        return response.json


def workspace(client: FlaskClient, make_user: Callable[..., dict[str, Any]],
              make_api_key: Callable[..., str]) -> Workspace:
    user = make_user()
    return Workspace(client, user, make_api_key(user["user_id"], scope="operator"), make_api_key)
