"""Exponential backoff with full jitter for talking to an unreachable hub."""

from __future__ import annotations

import random

DEFAULT_BACKOFF_BASE = 5.0
DEFAULT_BACKOFF_CAP = 60.0


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Return a delay drawn uniformly from ``[0, min(cap, base * 2**attempt)]``.

    "Full jitter" (AWS architecture blog) spreads a fleet of agents that lost
    the hub at the same moment so they do not come back in lockstep.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)


class Backoff:
    """Stateful retry delays: :meth:`next_delay` grows, :meth:`reset` after a success."""

    def __init__(
        self,
        base: float = DEFAULT_BACKOFF_BASE,
        cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count this failure."""
        delay = full_jitter(self.attempt, self.base, self.cap, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (call after a successful request)."""
        self.attempt = 0
