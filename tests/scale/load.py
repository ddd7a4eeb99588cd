"""The users' side of the scale test: triggers at a steady rate and job reads, with retries.

What a careful API client does: every trigger carries an ``idempotency_key``,
so a request whose answer was lost (a hub killed mid-request) is simply sent
again; errors are retried with backoff for up to ``GIVE_UP_AFTER`` seconds
and only then count as errors visible to the client.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

GIVE_UP_AFTER = 60.0
TIMEOUT = 30.0


def agent_name(index: int) -> str:
    """The simulated agents' names (``tests/scale/fleet.py``)."""
    return f"scale-{index:05d}"


@dataclass
class LoadResult:
    triggered: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    trigger_retries: int = 0
    read_latencies: list[float] = field(default_factory=list)
    read_started: list[float] = field(default_factory=list)  # monotonic, beside each latency
    read_retries: int = 0
    errors: list[str] = field(default_factory=list)


class Load:
    """``rate`` triggers per second to agents chosen at random, plus ``reads`` GETs per second."""

    def __init__(self, url: str, token: str, agents: list[str], rate: float,
                 reads: float = 10.0, script: str = "noop.sh") -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.agents = agents
        self.rate = rate
        self.reads = reads
        self.script = script
        self.result = LoadResult()
        self.lock = threading.Lock()
        self.local = threading.local()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=48, thread_name_prefix="load")
        self.threads: list[threading.Thread] = []

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def request(self, method: str, path: str, body: Any = None) -> tuple[requests.Response,
                                                                         float, int]:
        """One call with retries: (final response, latency of the last attempt, retries)."""
        deadline = time.monotonic() + GIVE_UP_AFTER
        retries, delay = 0, 0.2
        while True:
            started = time.monotonic()
            try:
                response = self.session().request(method, self.url + path, json=body,
                                                  headers=self.headers, timeout=TIMEOUT)
                if response.status_code < 500 and response.status_code != 429:
                    return response, time.monotonic() - started, retries
                problem = f"HTTP {response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: {problem}")
            retries += 1
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 3.0)

    def trigger(self) -> None:
        key = f"scale-{uuid.uuid4().hex}"
        body = {"agent": random.choice(self.agents), "run_script": self.script,
                "idempotency_key": key}
        try:
            response, _, retries = self.request("POST", "/trigger-script", body)
            if response.status_code not in (200, 202):  # 200: the retry found its job
                raise RuntimeError(f"trigger: {response.status_code} {response.text[:300]}")
            with self.lock:
                self.result.triggered[key] = response.json()["job_id"]
                self.result.trigger_retries += retries
        except RuntimeError as exc:
            with self.lock:
                self.result.errors.append(str(exc))

    def read(self) -> None:
        with self.lock:
            known = list(self.result.triggered.values())[-200:]
        if not known:
            return
        started = time.monotonic()
        try:
            response, latency, retries = self.request("GET", f"/jobs/{random.choice(known)}")
            if response.status_code != 200:
                raise RuntimeError(f"GET /jobs: {response.status_code} {response.text[:300]}")
            with self.lock:
                if not retries:
                    self.result.read_latencies.append(latency)
                    self.result.read_started.append(started)
                self.result.read_retries += retries
        except RuntimeError as exc:
            with self.lock:
                self.result.errors.append(str(exc))

    def _ticker(self, per_second: float, action: Any) -> None:
        interval = 1.0 / per_second
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.pool.submit(action)
            next_at += interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Load:
        for per_second, action in ((self.rate, self.trigger), (self.reads, self.read)):
            thread = threading.Thread(target=self._ticker, args=(per_second, action),
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> LoadResult:
        """Stop sending; wait for the calls in flight (they retry up to GIVE_UP_AFTER)."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(5)
        self.pool.shutdown(wait=True)
        return self.result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
