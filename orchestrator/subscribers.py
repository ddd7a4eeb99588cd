"""Who reacts to what: every outbox subscriber, registered by ``create_app``.

To add a reaction to an event, write a handler ``(payload, attempt) -> None``
in the service that owns the work and add one line here. Choose the mode by
what a lost or late run would cost (``orchestrator.services.outbox``):
IN_TRANSACTION for a decision that must commit with the change, AFTER_COMMIT
for a wake-up that only saves latency (or that a sweep repairs), INLINE for a
quick durable effect, BACKGROUND for slow or outbound work (HTTP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from orchestrator import key_cache
from orchestrator.services import (
    dispatch,
    fanout_progress,
    integration_hooks,
    job_changes,
    lifecycle,
    locks,
    notify,
    outbox,
    schedule_rules,
    webhooks,
)
from orchestrator.services.ai import analysis
from orchestrator.services.events import EVENT_RECORDED
from orchestrator.services.git import writeback
from orchestrator.services.outbox import Mode, Subscriber


def _has(key: str) -> Callable[[dict[str, Any]], bool]:
    """A filter: the payload's ``key`` is set."""
    return lambda payload: bool(payload.get(key))


SUBSCRIBERS = (
    # A fan-out's window, error limit and stages decide under the finishing transaction.
    Subscriber("fanout_progress", lifecycle.JOB_FINISHED, fanout_progress.on_job_finished,
               Mode.IN_TRANSACTION, accepts=_has("fanout_id")),
    # Completion is re-checked by maintenance (complete_finished_fanouts) if this is lost.
    Subscriber("fanout_settle", lifecycle.JOB_FINISHED, fanout_progress.settle,
               Mode.AFTER_COMMIT, accepts=_has("fanout_id")),
    # A lock or group holder ended: queue the next waiter with the finish (locks module).
    Subscriber("lock_waiters", lifecycle.JOB_FINISHED, locks.requeue_waiters,
               Mode.IN_TRANSACTION),
    # Dead-man's switch recovery and pause_after_failures decide with the finish.
    Subscriber("schedule_rules", lifecycle.JOB_FINISHED, schedule_rules.on_job_finished,
               Mode.IN_TRANSACTION, accepts=_has("schedule_id")),
    # Waiters re-read the row every few seconds; the lease guard makes withdrawal optional.
    Subscriber("wake_waiters", lifecycle.JOB_FINISHED, dispatch.wake_waiters, Mode.AFTER_COMMIT),
    Subscriber("followers_finished", lifecycle.JOB_FINISHED, job_changes.announce_payload,
               Mode.AFTER_COMMIT),
    Subscriber("followers_changed", job_changes.JOB_CHANGED, job_changes.announce_payload,
               Mode.AFTER_COMMIT),
    Subscriber("withdraw", lifecycle.JOB_FINISHED, dispatch.withdraw_finished,
               Mode.AFTER_COMMIT, accepts=_has("queue")),
    # The pending row is the durable record; leases.reconcile_lost_jobs pushes what Redis lost.
    Subscriber("agent_queue", lifecycle.JOBS_QUEUED, dispatch.push_queued, Mode.AFTER_COMMIT),
    Subscriber("webhook", lifecycle.JOB_FINISHED, webhooks.deliver_job_webhook,
               Mode.BACKGROUND, accepts=webhooks.has_webhook),
    # Git write-back (commit status, PR comment) and automatic AI diagnosis.
    Subscriber("integrations", lifecycle.JOB_FINISHED, integration_hooks.handle_job_finished,
               Mode.BACKGROUND, accepts=integration_hooks.reacts_to),
    Subscriber("notifications", EVENT_RECORDED, notify.fan_out_event, Mode.BACKGROUND,
               accepts=notify.may_notify),
    Subscriber("notification", notify.NOTIFICATION_DUE, notify.deliver_notification,
               Mode.BACKGROUND),
    Subscriber("ai_analysis", analysis.ANALYSIS_QUEUED, analysis.analysis_queued,
               Mode.BACKGROUND),
    Subscriber("git_writeback_retry", writeback.WRITEBACK_RETRY, writeback.retry_due,
               Mode.BACKGROUND),
    # Cached keys expire within API_KEY_CACHE_SECONDS should this bump be lost.
    Subscriber("key_cache_epoch", key_cache.API_KEYS_CHANGED, key_cache.bump_epoch,
               Mode.AFTER_COMMIT),
)


def register_subscribers(app: Flask) -> None:
    """Give ``app`` its outbox registry with every subscriber above."""
    registry = outbox.init_app(app)
    for subscriber in SUBSCRIBERS:
        registry.add(subscriber)
