"""Creating, changing and reading integrations; secrets go in encrypted and never come out.

Functions take the model class: ``Integration`` (the caller's tenant, filtered
automatically) or ``GlobalIntegration`` (instance-wide, admins only).
Secret fields may arrive inside ``config`` (as the product docs show) or in
``secrets``; either way they are moved to the encrypted ``secrets`` column.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.extensions import db
from orchestrator.ids import new_id
from orchestrator.models import GlobalIntegration, Integration
from orchestrator.services import alert_rules, outbound
from orchestrator.services.crypto import decrypt_secret, encrypt_secret
from orchestrator.services.events import EVENT_TYPES
from orchestrator.services.integrations import PROVIDERS
from orchestrator.services.integrations.base import Provider, Target
from orchestrator.services.integrations.kinds import KINDS, Kind

IntegrationModel = type[Integration] | type[GlobalIntegration]
AnyIntegration = Integration | GlobalIntegration

DEFAULT_EVENTS = ("job.failed", "job.timeout", "agent.offline", "schedule.missed")
CONFIGURED = "configured"


def secret_aad(integration_id: str, field: str) -> str:
    """Associated data binding a ciphertext to its integration and field."""
    return f"integration:{integration_id}:{field}"


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


def provider_for(type_: str) -> Provider:
    provider = PROVIDERS.get(type_) or KINDS.get(type_)
    if provider is None:
        raise _invalid("type", f"unknown type {type_!r}; one of "
                       f"{', '.join((*PROVIDERS, *KINDS))}")
    return provider


def _split_secrets(provider: Provider, config: dict[str, Any],
                   secrets: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Move secret fields out of ``config``; refuse unknown or non-text secrets."""
    config, found = dict(config), {}
    for name in provider.secret_fields:
        if name in config:
            found[name] = config.pop(name)
    found.update(secrets)
    for name, value in found.items():
        if name not in provider.secret_fields:
            raise _invalid(f"secrets.{name}", f"{provider.type} has no secret {name!r} "
                           f"(secret fields: {', '.join(provider.secret_fields) or 'none'})")
        if not isinstance(value, str) or not value:
            raise _invalid(f"secrets.{name}", "must be a non-empty string")
    return config, found


def _check_config(provider: Provider, config: dict[str, Any], secret_names: set[str]) -> None:
    events = config.get("events")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise _invalid("config.events", "must be a list of event types")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise _invalid("config.events", f"unknown event type(s) {', '.join(unknown)}; known: "
                       f"{', '.join(EVENT_TYPES)}")
    if "rules" in config:  # alert rules (orchestrator.services.alert_rules)
        try:
            alert_rules.check_rules(config["rules"])
        except alert_rules.RuleError as exc:
            raise _invalid("config.rules", str(exc)) from None
    for name in provider.required_fields:
        if name not in secret_names and not config.get(name):
            raise _invalid(f"config.{name}", f"{provider.type} needs {name!r}")
    for name in (*provider.url_fields, "base_url"):
        if isinstance(config.get(name), str):
            _check_url(f"config.{name}", config[name])


def _check_kind(kind: Kind, provider: str, config: dict[str, Any],
                secret_names: set[str]) -> None:
    kind.check(provider, config, secret_names)
    if config.get("base_url") is not None:
        if not isinstance(config["base_url"], str):
            raise _invalid("config.base_url", "must be an http(s) URL")
        _check_url("config.base_url", config["base_url"])


def _check_url(field: str, url: str) -> None:
    try:
        outbound.check_target(url)
    except outbound.BlockedTarget as exc:
        raise _invalid(field, str(exc)) from None


def _store_secrets(row: AnyIntegration, provider: Provider, secrets: dict[str, str]) -> None:
    for name in provider.url_fields:
        if name in secrets:
            _check_url(f"secrets.{name}", secrets[name])
    stored = dict(row.secrets or {})
    for name, value in secrets.items():
        stored[name] = encrypt_secret(value, secret_aad(row.id, name))
    row.secrets = stored


def create_integration(model: IntegrationModel, data: dict[str, Any]) -> AnyIntegration:
    """Validate and store a new integration (secrets encrypted)."""
    provider = provider_for(data["type"])
    config, secrets = _split_secrets(provider, data.get("config") or {},
                                     data.get("secrets") or {})
    kind = KINDS.get(provider.type)
    if kind is not None:
        if model is GlobalIntegration and not kind.global_allowed:
            raise _invalid("type", f"{kind.type} integrations belong to a tenant "
                                   "(POST /integrations)")
        provider_name = kind.check_provider(data.get("provider"))
        if kind.type == "git":
            config.setdefault("events", ["push", "pull_request"])
        _check_kind(kind, provider_name, config, set(secrets))
    else:
        provider_name = None
        config.setdefault("events", list(DEFAULT_EVENTS))
        _check_config(provider, config, set(secrets))
    row = model(id=new_id("integration"), type=provider.type, provider=provider_name,
                name=data["name"], config=config, secrets={}, enabled=data.get("enabled", True),
                status="active")
    _store_secrets(row, provider, secrets)
    db.session.add(row)
    db.session.commit()
    return row


def get_integration(model: IntegrationModel, integration_id: str) -> AnyIntegration:
    row = db.session.get(model, integration_id)
    if row is None:
        raise NotFound(f"No integration {integration_id}.", error_code="integration_not_found")
    return row


def list_integrations(model: IntegrationModel) -> list[AnyIntegration]:
    return list(db.session.execute(
        db.select(model).order_by(model.created_at, model.id)).scalars())


def tenant_integration_views() -> list[dict[str, Any]]:
    """The caller's integrations, then the global ones (as fallbacks, without settings)."""
    return ([integration_view(row) for row in list_integrations(Integration)]
            + [tenant_fallback_view(row) for row in list_integrations(GlobalIntegration)])


def update_integration(model: IntegrationModel, integration_id: str,
                       data: dict[str, Any]) -> AnyIntegration:
    """Change name, enabled, config keys (``null`` removes one) and only the secrets named."""
    row = get_integration(model, integration_id)
    provider = provider_for(row.type)
    config_patch, secrets = _split_secrets(provider, data.get("config") or {},
                                           data.get("secrets") or {})
    config = dict(row.config or {})
    for key, value in config_patch.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    if (kind := KINDS.get(row.type)) is not None:
        _check_kind(kind, row.provider, config, set(row.secrets or {}) | set(secrets))
    else:
        config.setdefault("events", list(DEFAULT_EVENTS))
        _check_config(provider, config, set(row.secrets or {}) | set(secrets))
    row.config = config
    _store_secrets(row, provider, secrets)
    if data.get("name"):
        row.name = data["name"]
    if data.get("enabled") is not None:
        row.enabled = data["enabled"]
    db.session.commit()
    return row


def delete_integration(model: IntegrationModel, integration_id: str) -> None:
    db.session.delete(get_integration(model, integration_id))
    db.session.commit()


def decrypted_secrets(row: AnyIntegration) -> dict[str, str]:
    """The plaintext secrets, for sending only: never log or return them."""
    return {name: decrypt_secret(envelope, secret_aad(row.id, name))
            for name, envelope in (row.secrets or {}).items()}


def target_for(row: AnyIntegration) -> Target:
    return Target(id=row.id, type=row.type, name=row.name, config=dict(row.config or {}),
                  secrets=decrypted_secrets(row), tenant_id=getattr(row, "tenant_id", None))


def integration_view(row: AnyIntegration) -> dict[str, Any]:
    """The API representation: secrets only as ``"configured"``."""
    view = {column: getattr(row, column) for column in (
        "id", "type", "name", "enabled", "status", "last_test_at", "last_test_status",
        "last_test_error", "created_at", "updated_at")}
    view["scope"] = row.scope
    view["provider"] = row.provider
    view["config"] = dict(row.config or {})
    view["secrets"] = {name: CONFIGURED for name in sorted(row.secrets or {})}
    return view


def tenant_fallback_view(row: GlobalIntegration) -> dict[str, Any]:
    """A global integration as a tenant sees it: type, name and events, nothing else."""
    view = integration_view(row)
    view["config"] = {"events": row.events}
    view["secrets"] = {}
    return view
