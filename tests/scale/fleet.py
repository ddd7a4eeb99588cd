"""Simulated agents for the scale test: greenlets speaking the agent protocol over real HTTP.

Run as its own process (``python -m tests.scale.fleet URL KEY COUNT OUT``) so its
CPU is not the test's. Each agent registers, heartbeats every
``HEARTBEAT_INTERVAL`` seconds (with its running jobs), keeps one
``POST /agent/poll`` open, and for every job it is handed acknowledges the
start and reports a ``noop.sh`` success at once. Like the real agent, it
retries network errors, 429 and 5xx with backoff. On SIGTERM it writes what it
saw to ``OUT`` (JSON): how often each job was run, errors after retries.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - the monkey-patching above must come before every other import
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from typing import Any

import gevent
import requests
from gevent.pool import Pool

from tests.scale.load import agent_name

SCRIPT = "noop.sh"
TAG = "scale"
POLL_WAIT = float(os.environ.get("SCALE_POLL_WAIT", "10"))
HEARTBEAT_INTERVAL = float(os.environ.get("SCALE_HEARTBEAT_INTERVAL", "15"))
CALL_TIMEOUT = 60.0
#: Seconds an agent keeps retrying one call before it counts an error (the real agent
#: spools results forever; a minute covers every failover of the test).
GIVE_UP_AFTER = 60.0


class Fleet:
    """The agents of this process and what they saw."""

    def __init__(self, url: str, key: str, count: int) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.count = count
        self.runs: Counter[str] = Counter()
        self.reported: Counter[str] = Counter()
        self.deliveries: Counter[str] = Counter()
        self.duplicates = 0
        self.poll_failures = 0
        self.running: dict[str, set[str]] = {}
        self.registered = 0
        self.polling: set[str] = set()
        self.retries = 0
        self.errors: list[str] = []
        self.stopping = False

    def call(self, session: requests.Session, path: str, body: dict[str, Any],
             timeout: float = CALL_TIMEOUT) -> requests.Response:
        """POST with the real agent's retry rule; raise after ``GIVE_UP_AFTER`` seconds."""
        deadline = time.monotonic() + GIVE_UP_AFTER
        delay = 0.2
        while True:
            try:
                response = session.post(self.url + path, json=body, headers=self.headers,
                                        timeout=timeout)
                if response.status_code < 500 and response.status_code != 429:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if self.stopping or time.monotonic() > deadline:
                raise RuntimeError(f"{path}: {problem}")
            self.retries += 1
            gevent.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 3.0)

    def error(self, name: str, exc: BaseException) -> None:
        if not self.stopping:
            self.errors.append(f"{name}: {exc}")

    def register(self, session: requests.Session, name: str) -> None:
        body = {"agent_name": name, "tags": [TAG], "version": "scale", "workers": 4,
                "hostname": "scale-sim", "manifest_error": None,
                "manifest": {"scripts": [{"name": SCRIPT}], "flows": []}}
        response = self.call(session, "/register-agent", body)
        if response.status_code != 200:
            raise RuntimeError(f"register {name}: {response.status_code} {response.text}")
        self.registered += 1

    def heartbeat_loop(self, session: requests.Session, name: str) -> None:
        while not self.stopping:
            gevent.sleep(HEARTBEAT_INTERVAL * random.uniform(0.9, 1.0))
            body = {"agent_name": name, "running_jobs": sorted(self.running[name]),
                    "draining": False, "manifest_error": None,
                    "manifest": {"scripts": [{"name": SCRIPT}], "flows": []}}
            try:
                self.call(session, "/agent/heartbeat", body)
            except RuntimeError as exc:
                self.error(name, exc)

    def poll_loop(self, session: requests.Session, name: str) -> None:
        while not self.stopping:
            self.polling.add(name)
            try:
                response = self.call(session, "/agent/poll", timeout=POLL_WAIT + 30,
                                     body={"agent_name": name, "max_jobs": 4,
                                           "wait": POLL_WAIT})
                if response.status_code != 200:
                    raise RuntimeError(f"poll: {response.status_code} {response.text[:200]}")
                for job in response.json()["jobs"]:
                    gevent.spawn(self.run_job, session, name, job["job_id"])
            except RuntimeError:
                # The real agent retries polls forever: a poll that gave up loses nothing
                # (a job leased to a poll nobody read is requeued after its lease).
                self.poll_failures += 1
                gevent.sleep(1)

    def run_job(self, session: requests.Session, name: str, job_id: str) -> None:
        """Acknowledge, "run" (count it), report; a refused start (409) runs nothing.

        As the real agent does (``agent/daemon.py``), a job already in hand here is
        a duplicate delivery and is ignored.
        """
        self.deliveries[job_id] += 1
        if job_id in self.running[name]:
            self.duplicates += 1
            return
        self.running[name].add(job_id)
        try:
            start = self.call(session, f"/agent/jobs/{job_id}/start", {"agent_name": name})
            if start.status_code != 200:
                return
            self.runs[job_id] += 1
            result = {"agent_name": name, "status": "success", "exit_code": 0, "stdout": "",
                      "stderr": "", "truncated": {"stdout": False, "stderr": False},
                      "duration_ms": 1, "error": None}
            answer = self.call(session, f"/agent/jobs/{job_id}/result", result)
            if answer.status_code == 200:
                self.reported[job_id] += 1
            else:
                self.error(name, RuntimeError(f"result {job_id}: {answer.status_code}"))
        except RuntimeError as exc:
            self.error(name, exc)
        finally:
            self.running[name].discard(job_id)

    def agent(self, index: int) -> list[gevent.Greenlet]:
        """Register; then heartbeat and poll in their own greenlets (returned)."""
        name = agent_name(index)
        self.running[name] = set()
        session = requests.Session()
        try:
            self.register(session, name)
        except RuntimeError as exc:
            self.error(name, exc)
            return []
        return [gevent.spawn(self.heartbeat_loop, session, name),
                gevent.spawn(self.poll_loop, session, name)]

    def snapshot(self) -> dict[str, Any]:
        return {"registered": self.registered, "polling": len(self.polling),
                "runs": dict(self.runs), "reported": dict(self.reported),
                "retries": self.retries, "errors": self.errors,
                "redelivered": sum(1 for n in self.deliveries.values() if n > 1),
                "duplicates_ignored": self.duplicates, "poll_failures": self.poll_failures}


def main(url: str, key: str, count: int, out: str) -> int:
    fleet = Fleet(url, key, count)
    greenlets = []
    starter = Pool(25)  # register at a bounded rate, like a fleet rolling out

    def start_all() -> None:
        for loops in starter.imap_unordered(fleet.agent, range(count)):
            greenlets.extend(loops)

    def write(path: str) -> None:
        with open(path + ".tmp", "w") as handle:
            json.dump(fleet.snapshot(), handle)
        os.replace(path + ".tmp", path)

    def stop() -> None:
        fleet.stopping = True

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.spawn(start_all)
    status_path = out + ".status"
    while not fleet.stopping:
        gevent.sleep(1)
        write(status_path)
    gevent.killall(greenlets, timeout=5)
    write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
