"""The retry policy follows LivePerson's guidance; the breaker trips on a dead target and recovers."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from harness.protocol.retry import Breaker, CircuitBreaker, RetryPolicy, parse_retry_after


def test_retry_after_in_both_forms() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now) == pytest.approx(7.0, abs=1.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


@pytest.mark.parametrize("category", ["http 400", "http 401", "http 403", "http 404", "handshake 401", "bad json"])
def test_client_errors_are_not_retried(category: str) -> None:
    assert RetryPolicy().pause(category, 1) is None


def test_throttling_waits_at_least_a_second_or_what_the_server_says() -> None:
    policy = RetryPolicy()
    assert policy.pause("http 429", 1) == 1.0
    assert policy.pause("handshake 429", 1, retry_after=3.0) == 3.0
    assert policy.pause("http 429", 9, retry_after=0.0) == 1.0


@pytest.mark.parametrize("category", ["http 503", "http 500", "handshake 502", "refused", "dropped", "timeout"])
def test_server_errors_pause_5_10_15_then_back_off_with_full_jitter(category: str) -> None:
    policy = RetryPolicy()
    assert [policy.pause(category, n) for n in (1, 2, 3)] == [5.0, 10.0, 15.0]
    rng = random.Random(7)
    waits = [policy.pause(category, 4, rng=rng) for _ in range(200)]
    assert all(0.0 <= w <= 120.0 for w in waits) and max(waits) > 60.0 > min(waits)
    assert all(0.0 <= policy.pause(category, 40, rng=rng) <= policy.backoff_cap_s for _ in range(50))


def test_max_attempts_ends_the_retries() -> None:
    assert RetryPolicy(max_attempts=2).pause("http 503", 2) is None


def test_breaker_trips_on_a_dead_target_probes_and_closes() -> None:
    breaker = CircuitBreaker(window=10, min_calls=5, threshold=0.8, open_s=2.0, max_open_s=8.0)
    now = 0.0
    tripped = [breaker.record(True, now) for _ in range(5)]
    assert tripped == [False] * 4 + [True] and breaker.state(now) is Breaker.OPEN
    assert breaker.wait(1.0) == pytest.approx(1.0)
    assert breaker.wait(2.0) == 0.0  # the probe
    assert breaker.wait(2.0) > 0.0  # everyone else waits for it
    breaker.record(True, 2.0)  # the probe failed: open twice as long
    assert breaker.open_s == 4.0 and breaker.state(5.9) is Breaker.OPEN
    assert breaker.wait(6.0) == 0.0
    breaker.record(False, 6.0)
    assert breaker.state(6.0) is Breaker.CLOSED and breaker.open_s == 2.0 and breaker.trips == 1


def test_breaker_stays_closed_when_most_calls_succeed() -> None:
    breaker = CircuitBreaker(window=10, min_calls=5, threshold=0.8)
    for i in range(50):
        assert not breaker.record(i % 3 == 0, float(i))
    assert breaker.state(50.0) is Breaker.CLOSED
