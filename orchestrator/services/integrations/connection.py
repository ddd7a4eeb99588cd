"""``POST .../integrations/{id}/test`` for every type: one real call, recorded on the row.

Notification types send a test message (``notify.test_integration``); an AI
provider answers one tiny chat call; a Git integration reads its repository
with its token.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from orchestrator.extensions import db
from orchestrator.models import GlobalIntegration, Integration, utcnow
from orchestrator.services import notify
from orchestrator.services.integrations.manage import (
    decrypted_secrets,
    get_integration,
    integration_view,
)

log = logging.getLogger(__name__)

TEST_SYSTEM = "You are a connection test. Reply with the single word: ok"
TEST_PROMPT = "ok?"
TEST_MAX_TOKENS = 5


def test_integration(model: type[Integration] | type[GlobalIntegration], integration_id: str,
                     tenant_id: str | None) -> dict[str, Any]:
    """Test one integration now; record ``last_test_at``/``last_test_status``/``status``."""
    row = get_integration(model, integration_id)
    if row.type == "ai_provider":
        status_code, error, duration_ms = _test_ai(row)
    elif row.type == "git":
        status_code, error, duration_ms = _test_git(row)
    else:
        return notify.test_integration(model, integration_id, tenant_id)
    row.last_test_at = utcnow()
    row.last_test_status = "error" if error else "ok"
    row.last_test_error = error
    row.status = "error" if error else "active"
    db.session.commit()
    log.info("integration %s test -> %s", row.id, row.last_test_status)
    return {"status": row.last_test_status, "status_code": status_code, "error": error,
            "duration_ms": duration_ms, "integration": integration_view(row)}


def _test_ai(row: Integration | GlobalIntegration) -> tuple[int | None, str | None, int]:
    from orchestrator.services.ai.providers import ProviderError, chat
    from orchestrator.services.ai.routing import integration_settings

    started = time.monotonic()
    try:
        reply = chat(integration_settings(row), TEST_SYSTEM, TEST_PROMPT, TEST_MAX_TOKENS)
    except ProviderError as exc:
        return exc.status_code, str(exc), _ms(started)
    return reply.status_code, None, reply.duration_ms


def _test_git(row: Integration | GlobalIntegration) -> tuple[int | None, str | None, int]:
    from orchestrator.services.git.hosts import HOSTS
    from orchestrator.services.git.writeback import WriteBackFailed, call

    host = HOSTS[row.provider]
    config = row.config or {}
    started = time.monotonic()
    try:
        call(host, decrypted_secrets(row).get("token", ""),
             host.repo_call(host.api_base(config.get("base_url")), config["repo"]))
    except WriteBackFailed as exc:
        return None, str(exc), _ms(started)
    return 200, None, _ms(started)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
