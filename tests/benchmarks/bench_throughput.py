"""Benchmark: end-to-end throughput of no-op jobs, trigger -> success, 10 agents x 4 workers.

Run by hand: ``.venv/bin/python -m tests.benchmarks.bench_throughput``
(``BENCH_THROUGHPUT_JOBS`` changes N). A few client threads trigger N jobs of
``noop.sh`` round-robin over 10 real agent processes as fast as the hub takes
them; the clock stops when ``GET /metrics/json`` counts N successes.

Floors, same run, same machine: ``subprocess.run`` of ``noop.sh`` from 40
threads (the agents' 40 workers without the agents), and a raw RQ
enqueue + dequeue of N jobs on the hub's Redis (the queue hop without HTTP,
auth or database).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from rq import Queue

from tests.benchmarks.harness import (
    AgentProcess,
    Backend,
    Hub,
    Table,
    cpu_seconds,
    describe_machine,
    machine_busy,
    ms,
    per_second,
    ratio,
    start_agents,
    stop_all,
    wait_until,
)

JOBS = int(os.environ.get("BENCH_THROUGHPUT_JOBS", "1000"))
AGENTS = 10
WORKERS_PER_AGENT = 4
CLIENT_THREADS = 4
NOOP = "noop.sh"
NOOP_SCRIPT = "#!/bin/sh\nexit 0\n"
DEADLINE = 240.0
RQ_QUEUE = "scriptmesh-bench-floor"


def trigger_all(hub: Hub, key: str, agents: list[str]) -> list[str]:
    """Trigger JOBS no-op jobs round-robin from CLIENT_THREADS threads; errors are returned."""
    names = itertools.cycle(agents)
    lock, errors = threading.Lock(), []

    def client(count: int) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(count):
            with lock:
                agent = next(names)
            response = session.post(f"{hub.url}/trigger-script", headers=headers, timeout=60,
                                    json={"agent": agent, "run_script": NOOP})
            if response.status_code != 202:
                errors.append(f"{response.status_code} {response.text[:200]}")

    shares = [JOBS // CLIENT_THREADS + (i < JOBS % CLIENT_THREADS)
              for i in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=client, args=(n,)) for n in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def job_counts(hub: Hub, key: str) -> dict[str, int]:
    response = requests.get(f"{hub.url}/metrics/json", timeout=60,
                            headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    return response.json()["jobs"]["by_status"]


def hub_throughput(hub: Hub, key: str, agents: list[AgentProcess]) -> dict[str, float]:
    """Trigger, then wait for JOBS terminal jobs; rates, outcome and CPU spent per job."""
    assert hub.proc is not None
    agent_pids = [agent.proc.pid for agent in agents if agent.proc is not None]
    cpu_before = (cpu_seconds([hub.proc.pid]), cpu_seconds(agent_pids), machine_busy())
    started = time.monotonic()
    errors = trigger_all(hub, key, [agent.name for agent in agents])
    triggered = time.monotonic()
    if errors:
        raise RuntimeError(f"{len(errors)} triggers failed, first: {errors[0]}")
    counts: dict[str, int] = {}

    def all_done() -> bool:
        counts.update(job_counts(hub, key))
        return counts.get("pending", 0) + counts.get("running", 0) == 0

    finished = wait_until(all_done, DEADLINE, interval=0.5, what="every job finished")
    busy = machine_busy()
    return {"trigger_rate": JOBS / (triggered - started), "rate": JOBS / (finished - started),
            "success": counts.get("success", 0), "elapsed": finished - started,
            "hub_cpu": (cpu_seconds([hub.proc.pid]) - cpu_before[0]) / JOBS,
            "agent_cpu": (cpu_seconds(agent_pids) - cpu_before[1]) / JOBS,
            "machine_busy": (busy[0] - cpu_before[2][0]) / (busy[1] - cpu_before[2][1])}


def spawn_rate(script: Path) -> float:
    """No-op processes per second with 40 concurrent ``subprocess.run`` callers."""
    with ThreadPoolExecutor(AGENTS * WORKERS_PER_AGENT) as pool:
        list(pool.map(lambda _: subprocess.run([str(script)], check=True), range(40)))
        started = time.monotonic()
        list(pool.map(lambda _: subprocess.run([str(script)], check=True), range(JOBS)))
        return JOBS / (time.monotonic() - started)


def rq_rate(backend: Backend) -> float:
    """Raw RQ: enqueue JOBS jobs then dequeue them all, one connection, jobs per second."""
    connection = backend.redis()
    queue = Queue(RQ_QUEUE, connection=connection)
    started = time.monotonic()
    for _ in range(JOBS):
        queue.enqueue_call(func="bench.noop", result_ttl=0)
    popped = 0
    while Queue.dequeue_any([queue], None, connection=connection) is not None:
        popped += 1
    elapsed = time.monotonic() - started
    queue.delete(delete_jobs=True)
    if popped != JOBS:
        raise RuntimeError(f"RQ floor popped {popped} of {JOBS} jobs")
    return JOBS / elapsed


def measure(backend: Backend, hub: Hub, agents: list[AgentProcess]) -> Table:
    key = hub.mint_keys({"bench-operator": "operator"})["bench-operator"]
    ours = hub_throughput(hub, key, agents)
    script = agents[0].home / "scripts" / NOOP
    spawns, rq = spawn_rate(script), rq_rate(backend)
    table = Table(f"Throughput: {JOBS} no-op jobs, trigger -> success",
                  f"{backend.describe()}, gunicorn {hub.workers} gevent workers, {AGENTS} agents "
                  f"x {WORKERS_PER_AGENT} workers, {CLIENT_THREADS} client threads, "
                  f"{describe_machine()}")
    floor = min(spawns, rq)
    table.add("jobs/s, trigger -> all succeeded", per_second(ours["rate"]), per_second(floor),
              ratio(ours["rate"], floor))
    table.add("  floor: no-op spawns/s, 40 threads x subprocess.run", "-", per_second(spawns))
    table.add("  floor: raw RQ enqueue + dequeue/s", "-", per_second(rq))
    table.add("triggers accepted/s (POST /trigger-script)", per_second(ours["trigger_rate"]),
              per_second(rq), ratio(ours["trigger_rate"], rq))
    table.add("jobs succeeded", f"{ours['success']} / {JOBS}")
    table.add("wall time", f"{ours['elapsed']:.1f} s")
    table.add("CPU per job: hub (all gunicorn workers)", ms(ours["hub_cpu"]))
    table.add("CPU per job: agent (incl. the script)", ms(ours["agent_cpu"]))
    table.add("machine CPU busy during the run", f"{ours['machine_busy']:.0%}")
    table.notes.append("ratio = ScriptMesh / floor; the jobs/s floor is the lower of the two "
                       "floors")
    return table


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="scriptmesh-bench-throughput-") as tmp:
        workdir = Path(tmp)
        backend = Backend(workdir).start()
        hub, agents = Hub(backend, workdir), []
        names = [f"bench-agent-{i:02d}" for i in range(AGENTS)]
        try:
            hub.start()
            agents = start_agents(hub, names, {NOOP: NOOP_SCRIPT}, WORKERS_PER_AGENT)
            measure(backend, hub, agents).print()
        except Exception:
            print(f"hub log:\n{hub.log_tail()}", file=sys.stderr)
            raise
        finally:
            stop_all([*agents, hub, backend])
    return 0


if __name__ == "__main__":
    sys.exit(main())
