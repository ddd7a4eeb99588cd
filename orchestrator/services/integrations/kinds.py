"""Integration types that name a provider: ``ai_provider`` (OpenAI, Anthropic, Ollama) and
``git`` (GitHub, GitLab, Gitea). Each checks its own config; secrets are stored as for all."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import ValidationError

from orchestrator.errors import ValidationFailed
from orchestrator.services.ai.providers import AI_PROVIDERS
from orchestrator.services.integrations.base import Provider

GIT_PROVIDERS = ("github", "gitlab", "gitea")
GIT_EVENTS = ("push", "pull_request")


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


class Kind(Provider):
    """An integration type with a ``provider``; never a notification target."""

    providers: ClassVar[tuple[str, ...]] = ()
    #: Whether instance admins may create it under /admin/integrations.
    global_allowed: ClassVar[bool] = True

    def subscribes(self, event_type: str, events: list[str]) -> bool:
        return False

    def check_provider(self, provider: str | None) -> str:
        if provider not in self.providers:
            raise invalid("provider", f"{self.type} needs a provider: one of "
                                      f"{', '.join(self.providers)}")
        return provider

    def check(self, provider: str, config: dict[str, Any], secret_names: set[str]) -> None:
        raise NotImplementedError


class AiProviderKind(Kind):
    type = "ai_provider"
    providers = AI_PROVIDERS
    secret_fields = ("api_key",)

    def check(self, provider: str, config: dict[str, Any], secret_names: set[str]) -> None:
        if provider != "ollama" and "api_key" not in secret_names:
            raise invalid("secrets.api_key", f"{provider} needs an api_key")
        if "model" in config and (not isinstance(config["model"], str) or not config["model"]):
            raise invalid("config.model", "must be a model name")
        temperature = config.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(
                temperature, int | float) or not 0 <= temperature <= 2):
            raise invalid("config.temperature", "must be a number from 0 to 2")
        max_tokens = config.get("max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(
                max_tokens, int) or not 1 <= max_tokens <= 1_000_000):
            raise invalid("config.max_tokens", "must be a positive integer")


class GitKind(Kind):
    type = "git"
    providers = GIT_PROVIDERS
    secret_fields = ("token", "webhook_secret")
    global_allowed = False

    def check(self, provider: str, config: dict[str, Any], secret_names: set[str]) -> None:
        for name in self.secret_fields:
            if name not in secret_names:
                raise invalid(f"secrets.{name}", f"git integrations need {name!r}")
        repo = config.get("repo")
        if not isinstance(repo, str) or "/" not in repo.strip("/"):
            raise invalid("config.repo", "must be owner/name (GitLab: group/project)")
        if provider == "gitea" and not config.get("base_url"):
            raise invalid("config.base_url", "gitea needs the server's base_url")
        events = config.get("events")
        if not isinstance(events, list) or not events or not set(events) <= set(GIT_EVENTS):
            raise invalid("config.events", f"must be a list of {', '.join(GIT_EVENTS)}")
        branches = config.get("branches")
        if branches is not None and (not isinstance(branches, list) or not all(
                isinstance(b, str) and b for b in branches)):
            raise invalid("config.branches", "must be a list of branch names or globs")
        check_trigger(config.get("trigger"))


def check_trigger(trigger: Any) -> None:
    """``config.trigger`` is a ``POST /trigger-script`` body without params/variables."""
    from orchestrator.schemas.jobs import TriggerSchema

    if not isinstance(trigger, dict):
        raise invalid("config.trigger", 'must name what to run, e.g. {"agent": "web-1", '
                                        '"run_flow": "deploy"}')
    if "params" in trigger or "variables" in trigger:
        raise invalid("config.trigger", "repo, branch, sha and pr are passed for you; "
                                        "no params/variables here")
    try:
        TriggerSchema().load(trigger)
    except ValidationError as exc:
        raise ValidationFailed(f"config.trigger: {exc.messages}",
                               details={"fields": {"config.trigger": exc.messages}}) from None


KINDS: dict[str, Kind] = {kind.type: kind for kind in (AiProviderKind(), GitKind())}
