"""HubClient: the agent's side of ``agent/protocol.py``, one method per endpoint."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

from agent import __version__, protocol

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
POLL_READ_MARGIN = 15.0


class HubError(Exception):
    """The hub answered with an error we cannot retry."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HubUnavailable(HubError):
    """Network error, timeout, 429 or 5xx: retry later with backoff."""


class AuthRejected(HubError):
    """401 (or 403 outside job endpoints): the API key is invalid, revoked or bound elsewhere."""


class JobRejected(HubError):
    """A 4xx on a job endpoint: drop this job report (e.g. 409 ``job_not_runnable``)."""


def _error_of(response: requests.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
        error = body.get("error") or {}
        return error.get("code"), error.get("message") or response.reason
    except (ValueError, AttributeError):
        return None, response.reason or f"HTTP {response.status_code}"


def _describe(exc: requests.RequestException, base_url: str) -> str:
    """A short reason for a network failure (urllib3's full chain is too long to log)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error talking to {base_url} (check CA_BUNDLE)"
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"proxy error reaching {base_url}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect to {base_url}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out talking to {base_url}"
    return f"{type(exc).__name__} talking to {base_url}"


class HubClient:
    """Talk to the hub over one ``requests.Session`` (proxies and CA settings from the env)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        agent_name: str,
        ca_bundle: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_name = agent_name
        self.session = requests.Session()
        self.session.trust_env = True  # HTTPS_PROXY / NO_PROXY / REQUESTS_CA_BUNDLE
        self.session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "User-Agent": f"scriptmesh-agent/{__version__}",
            }
        )
        if ca_bundle:
            self.session.verify = ca_bundle
        self._outage_lock = threading.Lock()
        self._unreachable_since: float | None = None

    def _note_reachable(self, reachable: bool) -> None:
        """Remember an outage; log once when the hub answers again after one."""
        with self._outage_lock:
            if not reachable:
                self._unreachable_since = self._unreachable_since or time.monotonic()
                return
            since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            log.info("hub %s is reachable again (after %.1fs)", self.base_url,
                     time.monotonic() - since)

    def _post(
        self, path: str, body: dict[str, Any], job: bool = False, read_timeout: float = READ_TIMEOUT
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = self.session.post(url, json=body, timeout=(CONNECT_TIMEOUT, read_timeout))
        except requests.RequestException as exc:
            self._note_reachable(False)
            raise HubUnavailable(f"{path}: {_describe(exc, self.base_url)}") from None
        status = response.status_code
        self._note_reachable(status < 500)
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                data = {}
            return data if isinstance(data, dict) else {}
        code, message = _error_of(response)
        text = f"{path}: HTTP {status} {code or ''} {message}".replace("  ", " ")
        if status == 429 or status >= 500:
            raise HubUnavailable(text, status, code)
        if status == 401 or (status == 403 and not job):
            raise AuthRejected(text, status, code)
        if job:
            raise JobRejected(text, status, code)
        raise HubError(text, status, code)

    def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /register-agent with version, workers, hostname, tags and manifest."""
        return self._post(protocol.REGISTER_PATH, {"agent_name": self.agent_name, **payload})

    def heartbeat(
        self,
        manifest: dict[str, Any],
        manifest_error: str | None,
        running_jobs: list[str],
        draining: bool,
        heartbeat_interval: float | None = None,
    ) -> list[dict[str, Any]]:
        """POST /agent/heartbeat; return the hub's ``commands``."""
        body: dict[str, Any] = {
            "agent_name": self.agent_name,
            "manifest": manifest,
            "manifest_error": manifest_error,
            "running_jobs": running_jobs,
            "draining": draining,
        }
        if heartbeat_interval:
            body["heartbeat_interval"] = heartbeat_interval
        commands = self._post(protocol.HEARTBEAT_PATH, body).get("commands") or []
        return [c for c in commands if isinstance(c, dict)]

    def poll(self, max_jobs: int, wait: float) -> list[dict[str, Any]]:
        """POST /agent/poll (long poll up to ``wait`` seconds); return job assignments."""
        body = {"agent_name": self.agent_name, "max_jobs": max_jobs, "wait": wait}
        data = self._post(protocol.POLL_PATH, body, read_timeout=wait + POLL_READ_MARGIN)
        return [job for job in data.get("jobs") or [] if isinstance(job, dict)]

    def start_job(self, job_id: str) -> None:
        """POST /agent/jobs/<id>/start; :class:`JobRejected` means do not run it."""
        path = protocol.JOB_START_PATH.format(job_id=job_id)
        self._post(path, {"agent_name": self.agent_name}, job=True)

    def upload_output(self, job_id: str, chunk: dict[str, dict[str, Any]]) -> bool:
        """POST /agent/jobs/<id>/output; return True when the hub asks to cancel the job."""
        path = protocol.JOB_OUTPUT_PATH.format(job_id=job_id)
        data = self._post(path, {"agent_name": self.agent_name, **chunk}, job=True)
        return bool(data.get("cancel"))

    def upload_events(self, job_id: str, events: list[dict[str, Any]]) -> bool:
        """POST /agent/jobs/<id>/events; return True when the hub asks to cancel the job."""
        path = protocol.JOB_EVENTS_PATH.format(job_id=job_id)
        data = self._post(path, {"agent_name": self.agent_name, "events": events}, job=True)
        return bool(data.get("cancel"))

    def report_result(self, job_id: str, result: dict[str, Any]) -> None:
        """POST /agent/jobs/<id>/result (idempotent on the hub)."""
        path = protocol.JOB_RESULT_PATH.format(job_id=job_id)
        self._post(path, {**result, "agent_name": self.agent_name}, job=True)
