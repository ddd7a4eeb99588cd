"""Backoff delays stay within the full-jitter bounds."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff, full_jitter


def test_full_jitter_bounds():
    rng = random.Random(1)
    for attempt in range(40):
        ceiling = min(60.0, 5.0 * 2**attempt)
        for _ in range(50):
            assert 0.0 <= full_jitter(attempt, 5.0, 60.0, rng) <= ceiling


def test_backoff_grows_caps_and_resets():
    backoff = Backoff(5.0, 60.0, random.Random(2))
    first = [backoff.next_delay() for _ in range(200)]
    assert max(first[:1]) <= 5.0
    assert max(first) <= 60.0
    assert max(first[10:]) > 30.0, "late attempts should reach towards the cap"
    assert backoff.attempt == 200
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_delay() <= 5.0


def test_backoff_rejects_bad_bounds():
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(10, 1)
