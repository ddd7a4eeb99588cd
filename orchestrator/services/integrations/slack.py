"""Slack incoming webhooks: Block Kit message with a plain-text fallback."""

from __future__ import annotations

from orchestrator.services.integrations.base import (
    IncomingWebhookProvider,
    Notification,
    Target,
    truncate,
)

EMOJI = {"critical": ":rotating_light:", "error": ":x:", "warning": ":warning:",
         "info": ":information_source:", "success": ":white_check_mark:"}


class SlackProvider(IncomingWebhookProvider):
    type = "slack"

    def message(self, notification: Notification, target: Target) -> dict:
        n = notification
        blocks: list[dict] = [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(n.title, 150)}},
        ]
        if n.text:
            blocks.append({"type": "section",
                           "text": {"type": "mrkdwn", "text": truncate(n.text, 3000)}})
        if n.fields:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": truncate(f"*{name}*\n{value}", 2000)}
                for name, value in list(n.fields.items())[:10]]})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"ScriptMesh · `{n.event_type}` · {n.iso_timestamp}"}]})
        payload: dict = {"text": f"{EMOJI.get(n.severity, '')} {n.title}".strip(),
                         "blocks": blocks}
        if target.config.get("channel"):
            payload["channel"] = target.config["channel"]
        return payload
