"""Deliver job results: spool first, upload, delete only after the hub's 2xx."""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent.client import HubClient, HubUnavailable, JobRejected
from agent.spool import Spool

log = logging.getLogger(__name__)
#: Statuses meaning "this body is not acceptable" (not "this job is gone"): send a fallback.
BODY_REFUSED = (400, 413, 422)


class ResultReporter:
    """Owns the spool and the result endpoint; used by runners and the resend loop."""

    def __init__(self, client: HubClient, spool: Spool) -> None:
        self.client = client
        self.spool = spool
        self.pending = threading.Event()  # set when something waits in the spool

    def report(self, job_id: str, result: dict[str, Any]) -> bool:
        """Spool ``result`` then try one upload; return True once the hub has it (or refused it)."""
        self.spool.save(job_id, result)
        return self.deliver(job_id, result)

    def deliver(self, job_id: str, result: dict[str, Any]) -> bool:
        """Upload one spooled result; keep it spooled when the hub is unavailable.

        :raises AuthRejected: the key stopped working; the result stays spooled.
        """
        try:
            self.client.report_result(job_id, result)
        except HubUnavailable as exc:
            log.warning("result of job %s kept in spool: hub unavailable (%s)", job_id, exc)
            self.pending.set()
            return False
        except JobRejected as exc:
            log.error("hub refused result of job %s, dropping it: %s", job_id, exc)
            if exc.status in BODY_REFUSED and not result.get("result_refused"):
                self._report_refusal(job_id, result, exc)
        else:
            log.info("result of job %s delivered", job_id)
        self.spool.delete(job_id)
        return True

    def _report_refusal(self, job_id: str, result: dict[str, Any], exc: JobRejected) -> None:
        """The hub refused the result's body (400/413/422): end the job anyway with a
        minimal ``failed`` result saying why, so it never stays running until its lease."""
        fallback = {
            "status": "failed", "exit_code": None, "stdout": "", "stderr": "",
            "truncated": {"stdout": bool(result.get("stdout")),
                          "stderr": bool(result.get("stderr"))},
            "duration_ms": None, "started_at": None, "result_refused": True,
            "error": f"result_refused_by_hub: {exc.code or exc.status}: {exc}"[:1000],
        }
        try:
            self.client.report_result(job_id, fallback)
        except (HubUnavailable, JobRejected) as again:
            log.error("hub refused the fallback result of job %s too: %s", job_id, again)

    def resend_all(self) -> bool:
        """Try every spooled result once, oldest first; return True when the spool is empty.

        Stops at the first unavailable answer so a down hub costs one request.
        """
        for job_id, result in self.spool.items():
            if not self.deliver(job_id, result):
                return False
        self.pending.clear()
        return not self.spool.job_ids()
