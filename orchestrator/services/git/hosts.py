"""The three Git hosts' wire formats: webhook signatures and payloads, statuses, comments.

GitHub signs with ``X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>``, Gitea
with ``X-Gitea-Signature: <HMAC-SHA256 hex>``; GitLab sends the shared
secret itself as ``X-Gitlab-Token``. Each names its deliveries
(``X-GitHub-Delivery``, ``X-Gitea-Delivery``, ``X-Gitlab-Event-UUID``) and
that id is what the replay guard remembers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

#: Our result -> each host's commit status state.
STATES = {
    "github": {"success": "success", "failure": "failure", "error": "error",
               "pending": "pending"},
    "gitea": {"success": "success", "failure": "failure", "error": "error",
              "pending": "pending"},
    "gitlab": {"success": "success", "failure": "failed", "error": "failed",
               "pending": "running"},
}


@dataclass(frozen=True)
class GitEvent:
    """A push or pull request, reduced to what a run needs."""

    event: str
    repo: str
    branch: str
    sha: str
    pr: int | None = None
    #: A pull request's base branch (what ``config.branches`` matches for PRs).
    target: str | None = None


@dataclass(frozen=True)
class ApiCall:
    method: str
    url: str
    json: dict[str, Any] | None = None


class Ignored(Exception):
    """A genuine delivery that triggers nothing (a tag push, a closed PR, a ping)."""


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _branch(ref: str) -> str:
    if not ref.startswith("refs/heads/"):
        raise Ignored(f"ref {ref!r} is not a branch")
    return ref.removeprefix("refs/heads/")


class GitHost:
    name: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    delivery_header: ClassVar[str]
    event_header: ClassVar[str]
    pr_actions: ClassVar[tuple[str, ...]]

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        raise NotImplementedError

    def api_base(self, base_url: str | None) -> str:
        return (base_url or self.default_base_url or "").rstrip("/")

    def event_name(self, headers: Mapping[str, str]) -> str:
        return headers.get(self.event_header, "")

    def parse(self, event: str, payload: dict[str, Any]) -> GitEvent:
        """The run's facts from a push or pull_request payload (GitHub and Gitea agree).

        :raises Ignored: for other events, deleted branches and non-build PR actions.
        """
        repo = (payload.get("repository") or {}).get("full_name") or ""
        if event == "push":
            if payload.get("deleted"):
                raise Ignored("branch deleted")
            return GitEvent("push", repo, _branch(payload.get("ref") or ""),
                            payload.get("after") or "")
        if event == "pull_request":
            if payload.get("action") not in self.pr_actions:
                raise Ignored(f"pull request action {payload.get('action')!r}")
            pull = payload.get("pull_request") or {}
            head, base = pull.get("head") or {}, pull.get("base") or {}
            return GitEvent("pull_request", repo, head.get("ref") or "", head.get("sha") or "",
                            int(payload.get("number") or 0), base.get("ref"))
        raise Ignored(f"event {event!r} is not push or pull_request")

    def headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def repo_call(self, base: str, repo: str) -> ApiCall:
        return ApiCall("GET", f"{base}/repos/{repo}")

    def status_call(self, base: str, repo: str, sha: str, state: str, description: str,
                    context: str, target_url: str | None) -> ApiCall:
        body = {"state": STATES[self.name][state], "description": description[:140],
                "context": context}
        if target_url:
            body["target_url"] = target_url
        return ApiCall("POST", f"{base}/repos/{repo}/statuses/{sha}", body)

    def comment_create(self, base: str, repo: str, pr: int, body: str) -> ApiCall:
        return ApiCall("POST", f"{base}/repos/{repo}/issues/{pr}/comments", {"body": body})

    def comment_update(self, base: str, repo: str, pr: int, comment_id: str,
                       body: str) -> ApiCall:
        return ApiCall("PATCH", f"{base}/repos/{repo}/issues/comments/{comment_id}",
                       {"body": body})


class GitHub(GitHost):
    name = "github"
    default_base_url = "https://api.github.com"
    delivery_header = "X-GitHub-Delivery"
    event_header = "X-GitHub-Event"
    pr_actions = ("opened", "synchronize", "reopened")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        given = headers.get("X-Hub-Signature-256", "")
        return given.startswith("sha256=") and hmac.compare_digest(
            given.removeprefix("sha256="), _hmac_hex(secret, body))

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}


class Gitea(GitHost):
    name = "gitea"
    delivery_header = "X-Gitea-Delivery"
    event_header = "X-Gitea-Event"
    pr_actions = ("opened", "synchronized", "reopened")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        given = headers.get("X-Gitea-Signature", "")
        return bool(given) and hmac.compare_digest(given, _hmac_hex(secret, body))

    def api_base(self, base_url: str | None) -> str:
        return f"{(base_url or '').rstrip('/')}/api/v1"

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}", "Accept": "application/json"}


class GitLab(GitHost):
    name = "gitlab"
    default_base_url = "https://gitlab.com"
    delivery_header = "X-Gitlab-Event-UUID"
    event_header = "X-Gitlab-Event"
    pr_actions = ("open", "reopen", "update")
    EVENTS = {"Push Hook": "push", "Merge Request Hook": "pull_request"}

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        given = headers.get("X-Gitlab-Token", "")
        return bool(given) and hmac.compare_digest(given.encode(), secret.encode())

    def api_base(self, base_url: str | None) -> str:
        return f"{(base_url or self.default_base_url).rstrip('/')}/api/v4"

    def event_name(self, headers: Mapping[str, str]) -> str:
        return self.EVENTS.get(headers.get(self.event_header, ""), "")

    def parse(self, event: str, payload: dict[str, Any]) -> GitEvent:
        repo = (payload.get("project") or {}).get("path_with_namespace") or ""
        if event == "push":
            sha = payload.get("checkout_sha") or payload.get("after") or ""
            if not sha or set(sha) == {"0"}:
                raise Ignored("branch deleted")
            return GitEvent("push", repo, _branch(payload.get("ref") or ""), sha)
        if event == "pull_request":
            attrs = payload.get("object_attributes") or {}
            action = attrs.get("action")
            if action not in self.pr_actions or (action == "update" and not attrs.get("oldrev")):
                raise Ignored(f"merge request action {action!r} without new commits")
            return GitEvent("pull_request", repo, attrs.get("source_branch") or "",
                            (attrs.get("last_commit") or {}).get("id") or "",
                            int(attrs.get("iid") or 0), attrs.get("target_branch"))
        raise Ignored(f"event {event!r} is not a push or merge request hook")

    def headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    @staticmethod
    def _project(repo: str) -> str:
        return quote(repo, safe="")

    def repo_call(self, base: str, repo: str) -> ApiCall:
        return ApiCall("GET", f"{base}/projects/{self._project(repo)}")

    def status_call(self, base: str, repo: str, sha: str, state: str, description: str,
                    context: str, target_url: str | None) -> ApiCall:
        body = {"state": STATES["gitlab"][state], "description": description[:140],
                "name": context}
        if target_url:
            body["target_url"] = target_url
        return ApiCall("POST", f"{base}/projects/{self._project(repo)}/statuses/{sha}", body)

    def comment_create(self, base: str, repo: str, pr: int, body: str) -> ApiCall:
        return ApiCall("POST", f"{base}/projects/{self._project(repo)}/merge_requests/{pr}"
                               "/notes", {"body": body})

    def comment_update(self, base: str, repo: str, pr: int, comment_id: str,
                       body: str) -> ApiCall:
        return ApiCall("PUT", f"{base}/projects/{self._project(repo)}/merge_requests/{pr}"
                              f"/notes/{comment_id}", {"body": body})


HOSTS: dict[str, GitHost] = {host.name: host for host in (GitHub(), GitLab(), Gitea())}
