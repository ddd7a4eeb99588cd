"""Durations in flow files: seconds as numbers, or strings like ``500ms``, ``2s``, ``1m``."""

from __future__ import annotations

import re
from typing import Any

from agent.flows.errors import FlowError

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, field: str = "duration") -> float:
    """Return ``value`` in seconds; a bare number means seconds.

    :raises FlowError: for negative numbers or strings that are not durations.
    """
    if isinstance(value, bool):
        raise FlowError(f"{field}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise FlowError(f"{field}: a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            number = float(value.strip().rstrip("mshMSH").strip() or 0)
            return number * _UNITS[match.group(2)]
    raise FlowError(f"{field}: {value!r} is not a duration (use 1.5, '500ms', '2s', '1m')")


def optional_duration(value: Any, field: str) -> float | None:
    """Like :func:`parse_duration` but ``None`` stays ``None``."""
    return None if value is None else parse_duration(value, field)
