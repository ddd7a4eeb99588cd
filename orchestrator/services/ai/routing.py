"""Which AI provider serves a task: the AI config (``/ai-config``) and the resolution chain.

For each call the provider is, in order: the tenant's override for the task,
the tenant's default provider (else its only enabled AI integration), the
instance's override or default (``/admin/ai-config``, else its first enabled
global AI integration), and last the environment (``ANTHROPIC_API_KEY``,
``OPENAI_API_KEY``, ``OLLAMA_HOST``). A disabled integration is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from orchestrator.errors import ValidationFailed
from orchestrator.extensions import db
from orchestrator.models import AiConfig, GlobalAiConfig, GlobalIntegration, Integration
from orchestrator.services.ai.providers import DEFAULT_BASE_URLS, DEFAULT_MODELS, Settings

#: The AI tasks ScriptMesh implements ("agents" in the product docs' words).
TASKS = ("diagnosis", "repair", "flakiness")
AI_TYPE = "ai_provider"


@dataclass(frozen=True)
class Resolution:
    """The provider a task gets, and which link of the chain chose it."""

    task: str
    #: override, tenant_default, tenant_integration, global_override, global_default,
    #: global_integration or environment.
    source: str
    integration_id: str | None
    settings: Settings

    def view(self) -> dict[str, Any]:
        return {"task": self.task, "source": self.source, "integration_id": self.integration_id,
                "provider": self.settings.provider, "model": self.settings.model,
                "base_url": self.settings.base_url}


class NoProvider(ValidationFailed):
    """No link of the chain gives a provider."""


def check_task(task: str) -> str:
    """``task`` if implemented; else 422 listing the implemented tasks."""
    if task not in TASKS:
        raise ValidationFailed(
            f"AI task {task!r} is not implemented; implemented: {', '.join(TASKS)}.",
            error_code="ai_task_not_implemented", details={"implemented": list(TASKS)})
    return task


# -- the AI config ----------------------------------------------------------------------

def tenant_config(tenant_id: str) -> AiConfig | None:
    return db.session.execute(db.select(AiConfig).where(AiConfig.tenant_id == tenant_id)
                              ).scalar_one_or_none()


def global_config() -> GlobalAiConfig | None:
    return db.session.execute(db.select(GlobalAiConfig).order_by(GlobalAiConfig.id)
                              ).scalars().first()


def config_view(row: AiConfig | GlobalAiConfig | None) -> dict[str, Any]:
    view = {"default_provider": row.default_provider if row else None,
            "agent_overrides": list(row.agent_overrides or []) if row else [],
            "implemented_agents": list(TASKS)}
    if isinstance(row, AiConfig) or row is None:
        view["auto_diagnose"] = bool(getattr(row, "auto_diagnose", False))
    return view


def put_config(tenant_id: str | None, data: dict[str, Any]) -> AiConfig | GlobalAiConfig:
    """Replace the tenant's (or, with None, the instance's) AI config; the caller commits."""
    _check_integration("default_provider", data.get("default_provider"), tenant_id)
    overrides = []
    for index, override in enumerate(data.get("agent_overrides") or []):
        check_task(override["agent_name"])
        _check_integration(f"agent_overrides.{index}.integration_id",
                           override["integration_id"], tenant_id)
        overrides.append({"agent_name": override["agent_name"],
                          "integration_id": override["integration_id"]})
    row = tenant_config(tenant_id) if tenant_id else global_config()
    if row is None:
        row = AiConfig(tenant_id=tenant_id) if tenant_id else GlobalAiConfig()
        db.session.add(row)
    row.default_provider = data.get("default_provider")
    row.agent_overrides = overrides
    if tenant_id and "auto_diagnose" in data:
        row.auto_diagnose = bool(data["auto_diagnose"])
    db.session.flush()
    return row


def _check_integration(field: str, integration_id: str | None, tenant_id: str | None) -> None:
    if integration_id is None:
        return
    row = _integration(integration_id, tenant_id)
    if row is None or row.type != AI_TYPE:
        raise ValidationFailed(f"{field}: no ai_provider integration {integration_id}",
                               details={"fields": {field: ["unknown ai_provider integration"]}})


def _integration(integration_id: str, tenant_id: str | None
                 ) -> Integration | GlobalIntegration | None:
    """A tenant's own integration (``tenant_id`` given) or a global one, by id."""
    if tenant_id:
        own = db.session.execute(db.select(Integration).where(
            Integration.id == integration_id, Integration.tenant_id == tenant_id)
        ).scalar_one_or_none()
        if own is not None:
            return own
    return db.session.get(GlobalIntegration, integration_id)


# -- resolution -------------------------------------------------------------------------

def resolve(task: str, tenant_id: str) -> Resolution:
    """The provider ``task`` uses for ``tenant_id``, walking the chain.

    :raises NoProvider: when no link gives one.
    """
    check_task(task)
    for source, row in _candidates(task, tenant_id):
        if row is not None and row.type == AI_TYPE and row.enabled:
            return Resolution(task, source, row.id, integration_settings(row))
    settings = environment_settings()
    if settings is None:
        raise NoProvider(
            "No AI provider: add an ai_provider integration, set /ai-config, or set "
            "ANTHROPIC_API_KEY, OPENAI_API_KEY or OLLAMA_HOST.", error_code="no_ai_provider")
    return Resolution(task, "environment", None, settings)


def _override(row: AiConfig | GlobalAiConfig | None, task: str) -> str | None:
    for override in (row.agent_overrides or []) if row else []:
        if override.get("agent_name") == task:
            return override.get("integration_id")
    return None


def _candidates(task: str, tenant_id: str):  # noqa: ANN202 - a generator of (source, row)
    own, shared = tenant_config(tenant_id), global_config()
    if (integration_id := _override(own, task)):
        yield "override", _integration(integration_id, tenant_id)
    if own is not None and own.default_provider:
        yield "tenant_default", _integration(own.default_provider, tenant_id)
    yield "tenant_integration", _first(Integration, Integration.tenant_id == tenant_id)
    if (integration_id := _override(shared, task)):
        yield "global_override", _integration(integration_id, None)
    if shared is not None and shared.default_provider:
        yield "global_default", _integration(shared.default_provider, None)
    yield "global_integration", _first(GlobalIntegration)


def _first(model: type[Integration] | type[GlobalIntegration], *where: Any
           ) -> Integration | GlobalIntegration | None:
    return db.session.execute(db.select(model).where(
        model.type == AI_TYPE, model.enabled.is_(True), *where
    ).order_by(model.created_at, model.id)).scalars().first()


def integration_settings(row: Integration | GlobalIntegration) -> Settings:
    from orchestrator.services.integrations.manage import decrypted_secrets

    config = dict(row.config or {})
    provider = row.provider or "openai"
    return Settings(
        provider=provider, model=str(config.get("model") or DEFAULT_MODELS[provider]),
        api_key=decrypted_secrets(row).get("api_key"),
        base_url=str(config.get("base_url") or _env_base_url(provider)).rstrip("/"),
        temperature=config.get("temperature"), max_tokens=config.get("max_tokens"))


def _env_base_url(provider: str) -> str:
    variable = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL",
                "ollama": "OLLAMA_HOST"}[provider]
    raw = current_app.config.get(variable) or DEFAULT_BASE_URLS[provider]
    return raw if "://" in raw else f"http://{raw}"


def environment_settings() -> Settings | None:
    """The environment's provider: Anthropic, else OpenAI, else Ollama (first key set)."""
    config = current_app.config
    for provider, variable in (("anthropic", "ANTHROPIC_API_KEY"),
                               ("openai", "OPENAI_API_KEY"), ("ollama", "OLLAMA_HOST")):
        if config.get(variable):
            return Settings(provider=provider,
                            model=config.get("AI_MODEL") or DEFAULT_MODELS[provider],
                            api_key=None if provider == "ollama" else config[variable],
                            base_url=_env_base_url(provider).rstrip("/"))
    return None
