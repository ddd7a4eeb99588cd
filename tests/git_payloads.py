"""Webhook deliveries as GitHub, GitLab and Gitea send them: payload shapes and headers.

Payloads keep the documented structure (trimmed of fields ScriptMesh does not
read); headers are the ones each host sends, signed as each host signs.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import uuid
from typing import Any

REPO = "octo-org/hello-world"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
_events = itertools.count(1)


def _previous_sha() -> str:
    """Distinct events never have identical bodies: each push moves from another commit."""
    return hashlib.sha1(f"event-{next(_events)}".encode()).hexdigest()


def _updated_at() -> str:
    return f"2026-12-01T12:{next(_events) % 60:02d}:{next(_events) % 60:02d}Z"


def _user(login: str = "octocat") -> dict[str, Any]:
    return {"login": login, "id": 1, "type": "User"}


def _repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {"id": 1296269, "name": name, "full_name": full_name, "private": False,
            "owner": _user(owner), "html_url": f"https://github.com/{full_name}",
            "default_branch": "main", "clone_url": f"https://github.com/{full_name}.git"}


def github_push(branch: str = "main", sha: str = SHA, repo: str = REPO) -> dict[str, Any]:
    return {"ref": f"refs/heads/{branch}", "before": _previous_sha(), "after": sha,
            "created": False, "deleted": False, "forced": False, "base_ref": None,
            "compare": f"https://github.com/{repo}/compare/abc...def",
            "commits": [{"id": sha, "message": "Fix the thing", "timestamp":
                         "2026-12-01T12:00:00Z", "author": {"name": "Octo", "email":
                                                            "octo@example.com"}}],
            "head_commit": {"id": sha, "message": "Fix the thing"},
            "repository": _repository(repo), "pusher": {"name": "octocat"},
            "sender": _user()}


def github_pull_request(action: str = "opened", number: int = 42, sha: str = SHA,
                        head: str = "feature", base: str = "main",
                        repo: str = REPO) -> dict[str, Any]:
    return {"action": action, "number": number, "pull_request": {
        "id": 1, "number": number, "state": "open", "title": "Add the feature",
        "updated_at": _updated_at(),
        "user": _user(), "head": {"label": f"octocat:{head}", "ref": head, "sha": sha,
                                  "repo": _repository(repo)},
        "base": {"label": f"octo-org:{base}", "ref": base, "sha": "f" * 40,
                 "repo": _repository(repo)}},
        "repository": _repository(repo), "sender": _user()}


def github_headers(event: str, body: bytes, secret: str,
                   delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "292430182", "X-Hub-Signature-256": f"sha256={digest}",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body,
                                                  hashlib.sha1).hexdigest()}


def gitea_headers(event: str, body: bytes, secret: str,
                  delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event, "X-Gitea-Delivery": delivery or str(uuid.uuid4()),
            "X-Gitea-Signature": digest, "X-GitHub-Event": event,
            "X-Gogs-Event": event}


def gitea_pull_request(action: str = "opened", number: int = 7, sha: str = SHA,
                       head: str = "feature", base: str = "main",
                       repo: str = REPO) -> dict[str, Any]:
    payload = github_pull_request(action, number, sha, head, base, repo)
    payload["pull_request"]["index"] = number  # Gitea's name for the number, kept alongside
    return payload


def _project(path: str) -> dict[str, Any]:
    return {"id": 15, "name": path.rsplit("/", 1)[1], "path_with_namespace": path,
            "web_url": f"https://gitlab.example.com/{path}", "default_branch": "main"}


def gitlab_push(branch: str = "main", sha: str = SHA, repo: str = REPO) -> dict[str, Any]:
    return {"object_kind": "push", "event_name": "push", "before": _previous_sha(),
            "after": sha,
            "ref": f"refs/heads/{branch}", "ref_protected": True, "checkout_sha": sha,
            "user_username": "jsmith", "project_id": 15, "project": _project(repo),
            "commits": [{"id": sha, "message": "Fix the thing", "title": "Fix the thing"}],
            "total_commits_count": 1, "repository": {"name": repo.rsplit("/", 1)[1]}}


def gitlab_merge_request(action: str = "open", iid: int = 5, sha: str = SHA,
                         head: str = "feature", base: str = "main",
                         repo: str = REPO) -> dict[str, Any]:
    attributes = {"id": 99, "iid": iid, "target_branch": base, "source_branch": head,
                  "state": "opened", "action": action, "title": "Add the feature",
                  "updated_at": _updated_at(),
                  "last_commit": {"id": sha, "message": "Add the feature"},
                  "merge_status": "unchecked"}
    if action == "update":
        attributes["oldrev"] = "e" * 40
    return {"object_kind": "merge_request", "event_type": "merge_request",
            "user": {"username": "jsmith"}, "project": _project(repo),
            "object_attributes": attributes, "repository": {"name": repo.rsplit("/", 1)[1]}}


def gitlab_headers(event: str, secret: str, delivery: str | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "GitLab/17.5.0",
            "X-Gitlab-Event": event, "X-Gitlab-Token": secret,
            "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
            "X-Gitlab-Webhook-UUID": "0b0f7f1e-2d29-4f5d-a2a4-5b5c2b35c6a0",
            "X-Gitlab-Instance": "https://gitlab.example.com"}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
