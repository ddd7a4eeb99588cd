"""/hooks/git/{integration_id}: inbound GitHub, GitLab and Gitea webhooks (signed, no bearer)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.services.git.hooks import receive_webhook

blp = Blueprint("git_hooks", __name__, description="Inbound Git webhooks")


@blp.route("/hooks/git/<integration_id>")
class GitHook(MethodView):
    @blp.response(202, description="Triggered: `{triggered, job_id | fanout_id, repo, branch, "
                                   "sha, pr}`")
    @blp.alt_response(200, description="Accepted, nothing matched: `{triggered: false, reason}`")
    @blp.alt_response(401, description="bad_signature: unsigned or wrongly signed")
    @blp.alt_response(409, description="replayed_delivery: this delivery id was seen")
    def post(self, integration_id: str) -> Any:
        """Receive a push or pull/merge request event. Authenticated by the provider's
        signature under the integration's ``webhook_secret`` (GitHub ``X-Hub-Signature-256``,
        GitLab ``X-Gitlab-Token``, Gitea ``X-Gitea-Signature``)."""
        return receive_webhook(integration_id, request.headers, request.get_data())
