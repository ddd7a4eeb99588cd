"""A stopping hub's long waits: thrown out of Redis BLPOP at once, the connection dropped."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.proc_helpers import REPO, process_env

#: Runs under gevent as a gunicorn worker does: a greenlet blocks in BLPOP, the hub stops.
SCRIPT = r'''
from gevent import monkey; monkey.patch_all()
import sys, time, gevent, redis
from orchestrator.shutdown import HubStopping, answer_waiters, interruptible

r = redis.Redis.from_url(sys.argv[1])
key = "scriptmesh:test:interrupted-wait"
r.delete(key)
seen = []

def wait():
    try:
        with interruptible():
            r.blpop([key], timeout=20)
        seen.append("woke")
    except HubStopping:
        seen.append("stopped")

waiter = gevent.spawn(wait)
gevent.sleep(0.3)
started = time.monotonic()
assert answer_waiters() == 1
waiter.join(5)
assert seen == ["stopped"], seen
assert time.monotonic() - started < 1, time.monotonic() - started
idle = r.connection_pool._available_connections
assert idle and all(c._sock is None for c in idle), "interrupted connection kept open"
r.rpush(key, "x")  # the interrupted BLPOP must not be alive on the server to take it
assert r.lpop(key) == b"x"
try:
    with interruptible():
        raise AssertionError("a wait after the stop must not begin")
except HubStopping:
    pass
print("ok")
'''


def test_answer_waiters_interrupts_blpop_and_drops_the_connection(redis_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, redis_url], env=process_env({}),
                          cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
