"""The hub's HTTP API for the CLI: one ``HubClient`` over requests, errors as one-line ``HubError``.

A stored login session is refreshed on a 401 (and saved again); beside
``scriptmesh dev``, a call that needs more than the dev operator key (API keys
need admin) logs in as the dev admin once.
"""

from __future__ import annotations

from typing import Any

import click

from scriptmesh_cli import settings
from scriptmesh_cli.settings import Target

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "scriptmesh-cli/0.1.0"


class HubError(click.ClickException):
    """An error answer (or no answer) from the hub: its message, one line, exit 1."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status, self.code, self.details = status, code, details or {}

    def format_message(self) -> str:
        return self.message


def error_from(response: Any) -> HubError:
    """The hub's ``{"error": {"code", "message", "details"}}`` as a HubError."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = error.get("message") or f"HTTP {response.status_code} from {response.url}"
    return HubError(message, response.status_code, error.get("code"), error.get("details"))


class HubClient:
    """Calls to one hub with one credential."""

    def __init__(self, target: Target) -> None:
        import requests

        self.target = target
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        self._upgraded = False

    @property
    def url(self) -> str:
        return self.target.url

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}

    def send(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
             headers: dict[str, str] | None = None, stream: bool = False,
             timeout: float | None = DEFAULT_TIMEOUT) -> Any:
        """The raw response of one call (2xx), retried once after a session refresh."""
        import requests

        for attempt in range(2):
            try:
                response = self.http.request(
                    method, self.url + path, json=body, params=params, stream=stream,
                    headers={**self._headers(), **(headers or {})}, timeout=timeout)
            except requests.ConnectionError:
                raise HubError(f"Cannot reach the hub at {self.url} (is it running? "
                               "set --url or SCRIPTMESH_URL).") from None
            except requests.Timeout:
                raise HubError(f"The hub at {self.url} did not answer in time.") from None
            if response.ok:
                return response
            if attempt == 0 and self._recover(response):
                continue
            raise self._explain(error_from(response))
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the parsed JSON answer (None for 204)."""
        response = self.send(method, path, **kwargs)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body=body, **kwargs)

    def _recover(self, response: Any) -> bool:
        """Fix the credential after a 401/403 when we can: True to retry."""
        target = self.target
        if response.status_code == 401 and target.source == "session":
            return self._refresh()
        if response.status_code == 403 and target.source == "dev" and not self._upgraded:
            self._upgraded = True
            return self._dev_login()
        return False

    def _refresh(self) -> bool:
        session = self.target.session or {}
        if not session.get("refresh_token"):
            return False
        answer = self.http.post(self.url + "/auth/refresh", timeout=DEFAULT_TIMEOUT,
                                json={"refresh_token": session["refresh_token"]})
        if not answer.ok:
            settings.save_session(self.url, None)
            return False
        pair = answer.json()
        session = {**session, "access_token": pair["access_token"],
                   "refresh_token": pair["refresh_token"]}
        settings.save_session(self.url, session)
        self.target.session, self.target.token = session, pair["access_token"]
        return True

    def _dev_login(self) -> bool:
        dev = self.target.dev or {}
        if not (dev.get("email") and dev.get("password")):
            return False
        answer = self.http.post(self.url + "/auth/login", timeout=DEFAULT_TIMEOUT,
                                json={"email": dev["email"], "password": dev["password"]})
        if not answer.ok:
            return False
        self.target.token = answer.json()["access_token"]
        return True

    def _explain(self, error: HubError) -> HubError:
        if error.status == 401 and self.target.source == "none":
            return HubError(f"{error.message} Log in with `scriptmesh login`, or pass "
                            "--token / SCRIPTMESH_TOKEN.", error.status, error.code)
        return error
