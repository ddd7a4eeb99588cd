"""Benchmark: dispatch latency, trigger -> script start, on one real agent.

Run by hand: ``.venv/bin/python -m tests.benchmarks.bench_dispatch``
(``BENCH_DISPATCH_JOBS`` changes the number of measured jobs). ``stamp.sh``
prints ``date +%s.%N`` the moment it runs; the latency of a job is that stamp
minus the client's clock just before ``POST /trigger-script``. Each trigger is
synchronous (``async_exec: false``) so jobs run one after the other.

The floor, measured in the same run on the same machine: a thread blocked in
Redis ``BLPOP`` woken by an ``LPUSH`` (the hub's wake-up mechanism, without
HTTP, auth, database or RQ), plus ``subprocess.Popen`` of the same
``stamp.sh`` (the agent's spawn, without the agent).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

from tests.benchmarks.harness import (
    Backend,
    Hub,
    Table,
    describe_machine,
    ms,
    percentile,
    ratio,
    start_agents,
    stop_all,
)

JOBS = int(os.environ.get("BENCH_DISPATCH_JOBS", "200"))
WARMUP = 10
STAMP = "stamp.sh"
STAMP_SCRIPT = "#!/bin/sh\ndate +%s.%N\n"
AGENT = "bench-dispatch"
BLPOP_KEY = "scriptmesh-bench:blpop"


def trigger_and_stamp(session: requests.Session, hub: Hub, key: str) -> dict[str, float]:
    """Run stamp.sh through the hub; seconds from the trigger to each milestone.

    ``start``: the script's stamp; ``result``: the answer in hand; ``created`` and
    ``started``: the job's ``created_at`` and ``started_at`` (millisecond precision).
    """
    started = time.time()
    response = session.post(f"{hub.url}/trigger-script", timeout=60,
                            headers={"Authorization": f"Bearer {key}"},
                            json={"agent": AGENT, "run_script": STAMP, "async_exec": False,
                                  "timeout": 30})
    finished = time.time()
    response.raise_for_status()
    job = response.json()
    if job.get("status") != "success":
        raise RuntimeError(f"job {job.get('job_id')} ended {job.get('status')}: {job}")
    return {"start": float(job["stdout"].strip()) - started, "result": finished - started,
            "created": epoch(job["created_at"]) - started,
            "started": epoch(job["started_at"]) - started}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def spawn_stamp(script: Path) -> tuple[float, float]:
    """Spawn stamp.sh directly; (spawn -> script start, spawn -> exit) seconds."""
    started = time.time()
    proc = subprocess.Popen([str(script)], stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    finished = time.time()
    return float(out.strip()) - started, finished - started


def blpop_wakeups(backend: Backend, count: int) -> list[float]:
    """Seconds from LPUSH to the return of a BLPOP already blocked in another thread."""
    pusher, popper = backend.redis(), backend.redis()
    pusher.delete(BLPOP_KEY)
    woken: list[float] = []
    ready = threading.Semaphore(0)

    def pop_all() -> None:
        for _ in range(count):
            ready.release()
            _, value = popper.blpop([BLPOP_KEY], timeout=10)
            woken.append(time.time() - float(value))

    thread = threading.Thread(target=pop_all)
    thread.start()
    for _ in range(count):
        ready.acquire()
        time.sleep(0.002)  # let the popper reach BLPOP before pushing
        pusher.lpush(BLPOP_KEY, repr(time.time()))
    thread.join(30)
    pusher.delete(BLPOP_KEY)
    return woken


def measure(backend: Backend, hub: Hub, workdir: Path) -> Table:
    """Run the hub's jobs, then the floors, and build the table."""
    key = hub.mint_keys({"bench-operator": "operator"})["bench-operator"]
    session = requests.Session()
    for _ in range(WARMUP):
        trigger_and_stamp(session, hub, key)
    runs = [trigger_and_stamp(session, hub, key) for _ in range(JOBS)]
    script = workdir / "agents" / AGENT / "scripts" / STAMP
    for _ in range(WARMUP):
        spawn_stamp(script)
    spawns = [spawn_stamp(script) for _ in range(JOBS)]
    wakeups = blpop_wakeups(backend, JOBS)
    starts, results = [r["start"] for r in runs], [r["result"] for r in runs]
    spawn_starts, spawn_exits = [s[0] for s in spawns], [s[1] for s in spawns]
    table = Table(f"Dispatch latency: {JOBS} sequential jobs on one agent",
                  f"{backend.describe()}, gunicorn {hub.workers} gevent workers, 1 agent "
                  f"(4 workers), {describe_machine()}")
    for p in (50, 99):
        floor = percentile(wakeups, p) + percentile(spawn_starts, p)
        table.add(f"trigger -> script start, p{p}", ms(percentile(starts, p)), ms(floor),
                  ratio(percentile(starts, p), floor))
    for p in (50, 99):
        table.add(f"  floor part: Redis BLPOP wake-up, p{p}", "-", ms(percentile(wakeups, p)))
        table.add(f"  floor part: Popen -> stamp, p{p}", "-", ms(percentile(spawn_starts, p)))
    for p in (50, 99):
        table.add(f"trigger -> result in hand, p{p}", ms(percentile(results, p)),
                  ms(percentile(spawn_exits, p)), ratio(percentile(results, p),
                                                        percentile(spawn_exits, p)))
    created, started = [r["created"] for r in runs], [r["started"] for r in runs]
    table.add("  breakdown p50: trigger -> job row created_at", ms(percentile(created, 50)))
    table.add("  breakdown p50: created_at -> started_at", ms(percentile(started, 50)
                                                              - percentile(created, 50)))
    table.add("  breakdown p50: started_at -> script start", ms(percentile(starts, 50)
                                                               - percentile(started, 50)))
    table.notes += [
        "script start = the stamp stamp.sh prints; trigger = client clock before the POST",
        "floor = BLPOP wake-up + Popen -> stamp (percentiles added); result floor = Popen -> exit",
    ]
    return table


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="scriptmesh-bench-dispatch-") as tmp:
        workdir = Path(tmp)
        backend = Backend(workdir).start()
        hub, agents = Hub(backend, workdir), []
        try:
            hub.start()
            agents = start_agents(hub, [AGENT], {STAMP: STAMP_SCRIPT})
            measure(backend, hub, workdir).print()
        except Exception:
            print(f"hub log:\n{hub.log_tail()}", file=sys.stderr)
            raise
        finally:
            stop_all([*agents, hub, backend])
    return 0


if __name__ == "__main__":
    sys.exit(main())
