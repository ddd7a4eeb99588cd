"""Redaction before anything leaves for an AI provider: known secrets, then token look-alikes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
#: Shorter known values are not searched for: they would blank ordinary words.
MIN_SECRET_LENGTH = 6

#: Things that look like keys or tokens whoever issued them.
TOKEN_PATTERNS = tuple(re.compile(pattern) for pattern in (
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}",           # OpenAI / Anthropic keys
    r"gh[pousr]_[A-Za-z0-9]{20,}", r"github_pat_[A-Za-z0-9_]{20,}",
    r"glpat-[A-Za-z0-9_\-]{16,}", r"xox[abprs]-[A-Za-z0-9\-]{10,}",
    r"sm_live_[A-Za-z0-9_\-]{10,}", r"whsec_[A-Za-z0-9_\-]{10,}",
    r"AKIA[0-9A-Z]{16}", r"AIza[0-9A-Za-z_\-]{35}",
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",   # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*",
    r"\b[A-Fa-f0-9]{32,}\b",                               # long hex: keys, digests of keys
    r"\b[A-Za-z0-9+/_\-]{40,}={0,2}",                        # long base64-ish blobs
))
#: ``password=...``, ``API_KEY: ...``, ``"token": "..."``: keep the name, drop the value.
ASSIGNMENT = re.compile(
    r"(?i)\b([A-Za-z0-9_\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|"
    r"private[_\-]?key|credential)s?[\"']?\s*[:=]\s*)([\"']?)([^\s\"',;]+)")


def redact(text: str | None, known: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and every token-like string replaced."""
    if not text:
        return ""
    for value in sorted({v for v in known if v and len(v) >= MIN_SECRET_LENGTH},
                        key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    for pattern in TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact_values(value: Any, known: Iterable[str] = ()) -> Any:
    """``value`` (JSON-like) with every string in it redacted (before it is encoded, so
    escapes such as ``\\n`` cannot hide a value's end)."""
    known = list(known)
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, dict):
        return {key: redact_values(item, known) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item, known) for item in value]
    return value
