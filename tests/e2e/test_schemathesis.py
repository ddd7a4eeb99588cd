"""schemathesis against a live hub: with an operator key, an admin key and no credential,
no operation answers a server error or a body its OpenAPI document does not describe.

Bounded (``MAX_SECONDS`` per credential, one hub: about a minute) so CI stays well
inside its time limit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.proc_helpers import BIN

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MAX_SECONDS = 12
#: schemathesis checks that find defects of ours; the stateful/auth-probing ones guess
#: at semantics (e.g. that a DELETE makes a later GET 404) rather than check the contract.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def run_schemathesis(hub: LiveHub, token: str | None, tmp: Any) -> subprocess.CompletedProcess:
    argv = [str(BIN / "schemathesis"), "run", f"{hub.url}/openapi.json", "--checks", CHECKS,
            "--max-time", str(MAX_SECONDS), "--workers", "1", "--phases",
            "coverage,fuzzing", "--suppress-health-check", "all",
            "--request-timeout", "10", "--generation-database", "none",
            "--no-color"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=MAX_SECONDS + 15,
                          cwd=tmp)


def test_schemathesis_finds_no_server_error_or_schema_violation(
        start_hub: Callable[..., LiveHub], make_user: Any, make_api_key: Any,
        tmp_path: Any) -> None:
    hub = start_hub(AUTH_RATE_LIMIT="100000 per minute", AUTH_IP_RATE_LIMIT="100000 per minute")
    user = make_user()
    failures = []
    for credential in ("operator", "admin", "none"):
        token = None if credential == "none" else make_api_key(user["user_id"], scope=credential)
        result = run_schemathesis(hub, token, tmp_path)
        (tmp_path / f"schemathesis-{credential}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            failures.append(f"== {credential}\n{result.stdout[-5000:]}{result.stderr[-1000:]}")
    assert not failures, "\n".join(failures)
