"""``scriptmesh worker``: an RQ worker on the background queue, using the app's Redis.

RQ forks a work horse per job; the horse inherits this process's app context,
so ``@task`` functions run in the app built here. The parent never opens a
database connection (only Redis), so no pooled connection is shared across
the fork: each horse opens its own.
"""

from __future__ import annotations

import gc
import logging

from rq import Queue, Worker

from orchestrator.queues import BACKGROUND_QUEUE

log = logging.getLogger(__name__)


def run_worker(burst: bool = False) -> bool:
    """Work the background queue until SIGTERM (or, with ``burst``, until it is empty).

    RQ's own handlers make the first SIGTERM/SIGINT a warm shutdown (finish
    the current job) and a second one a cold shutdown.

    :returns: True if the worker did any work (RQ's ``work`` result).
    """
    from orchestrator import create_app
    from orchestrator.extensions import redis_store

    app = create_app()
    with app.app_context():
        connection = redis_store.connection
        queue = Queue(BACKGROUND_QUEUE, connection=connection)
        worker = Worker([queue], connection=connection)
        log.info("worker %s: consuming %s", worker.name, BACKGROUND_QUEUE)
        # with_scheduler: RQ's scheduler moves delayed jobs (webhook retries) onto the queue.
        worked = worker.work(burst=burst, logging_level="INFO", with_scheduler=True)
    gc.freeze()  # exiting next: skip the final full collection (a second on a busy host)
    return worked
