"""Public identifiers: a type prefix and 96 random bits (``job_3f9a...``)."""

from __future__ import annotations

import secrets

PREFIXES = {
    "tenant": "ten_",
    "user": "usr_",
    "api_key": "key_",
    "agent": "agt_",
    "job": "job_",
    "fanout": "fan_",
    "schedule": "sched_",
    "integration": "int_",
    "event": "evt_",
}


def new_id(kind: str) -> str:
    """A fresh unguessable id for a resource of ``kind`` (a key of ``PREFIXES``)."""
    return PREFIXES[kind] + secrets.token_hex(12)
