"""gunicorn settings for the hub: gevent workers, because most requests are idle long-polls.

Every connected agent keeps one ``POST /agent/poll`` open for up to
``POLL_WAIT`` (25 s) while the hub blocks in Redis ``BLPOP`` for it. With the
sync or gthread workers each waiting agent would hold an OS thread (about
8 MB of stack reserved, and a scheduler entry) and a 2,000-agent fleet would
need 2,000 threads. A gevent worker parks each waiting request in a greenlet
of a few KB instead, so one worker process holds thousands of them; hence
``worker_connections = 4000`` (at least 2,000 concurrently waiting agents per
process, with room for users' requests).

gunicorn's gevent worker monkey-patches the standard library when the worker
starts, before it imports the app (``preload_app`` stays False), so redis-py
and psycopg get cooperative sockets. Nothing here imports the app.

On SIGTERM a worker answers every waiting long-poll at once (an empty list
the agent re-polls; see ``orchestrator/shutdown.py``) and exits as soon as
its requests are done, so a hub stops in a second or two, not POLL_WAIT.
Agents' poll and heartbeat requests are left out of the access log unless
``LOG_LEVEL=debug``: a terminal shows what a person did.

Environment: ``PORT`` (5000), ``HOST`` (0.0.0.0), ``WEB_CONCURRENCY`` (worker
processes, default 2 x CPU cores; each one already serves thousands of
connections, so a couple per core is plenty), ``SCRIPTMESH_ENV`` (access log
on stdout unless production; add ``--access-logfile -`` in ``GUNICORN_CMD_ARGS``
to keep it in production).
"""

import logging
import multiprocessing
import os

_production = os.environ.get("SCRIPTMESH_ENV", "").lower() == "production"

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count())
worker_class = "gevent"
worker_connections = 4000
# gevent workers notify the master from their own greenlet, so a request
# waiting 25 s in BLPOP never trips this; it only catches a wedged worker.
timeout = 60
# On SIGTERM long-polls answer at once (post_worker_init); this bounds the other requests.
graceful_timeout = 30
keepalive = 75  # longer than typical load-balancer idle timeouts (60 s)
preload_app = False
accesslog = None if _production else "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Trust X-Forwarded-* from the load balancer only when told which addresses it uses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "scriptmesh-hub"
# gunicorn >= 24's control socket lives at one per-user path: two hubs on a host would clash.
control_socket_disable = True

#: Requests an agent makes all the time: access-logged only at debug level.
QUIET_PATHS = frozenset({"/agent/poll", "/agent/heartbeat"})


class QuietAgentRequests(logging.Filter):
    """Drop access-log lines of agents' polls and heartbeats unless logging at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if loglevel == "debug":
            return True
        try:
            return record.args["U"] not in QUIET_PATHS  # type: ignore[index, call-overload]
        except (KeyError, TypeError):
            return True


def post_worker_init(worker):  # noqa: ANN001 - gunicorn's hook signature
    """Quiet the access log, and make SIGTERM answer the worker's long waits at once."""
    worker.log.access_log.addFilter(QuietAgentRequests())
    original = worker.handle_exit

    def handle_exit(sig, frame):  # noqa: ANN001
        original(sig, frame)
        import gevent

        from orchestrator.shutdown import answer_waiters

        gevent.spawn(answer_waiters)  # not in the signal handler: it switches greenlets

    worker.handle_exit = handle_exit
    import signal

    signal.signal(signal.SIGTERM, handle_exit)


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    """A worker stopped by SIGTERM has answered every request: skip the interpreter teardown.

    Tearing down gevent, the app and every module takes a second or more on a
    busy machine, and the master waits for it; the logs are flushed first.
    """
    import sys

    stopping = sys.modules.get("orchestrator.shutdown")
    if stopping is not None and stopping.is_stopping():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
