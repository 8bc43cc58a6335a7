"""The retry policy follows LivePerson's guidance; the breaker trips on a dead target and recovers."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from harness.protocol.retry import Breaker, CircuitBreaker, RetryPolicy, parse_pauses, parse_retry_after, status_of


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


@pytest.mark.parametrize(
    "category", ["http 503", "http 500", "handshake 502", "refused", "dropped", "timeout", "close 4401", "pong timeout"]
)
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


def test_pauses_setting_text() -> None:
    assert parse_pauses("5,10,15") == (5.0, 10.0, 15.0)
    assert parse_pauses(" 0.5 ; 1 ") == (0.5, 1.0)
    for bad in ("", "soon", "5,-1", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_pauses(bad)


def test_socket_response_codes_mean_what_http_statuses_mean() -> None:
    assert status_of("resp 503") == 503 and status_of("http 429") == 429 and status_of("close 4401") is None
    policy = RetryPolicy()
    assert policy.pause("resp 500", 1) == 5.0 and policy.pause("resp 404", 1) is None
    assert policy.pause("resp 429", 1, retry_after=2.0) == 2.0


def test_a_session_that_fails_pauses_whatever_failed_and_never_sooner_than_the_schedule() -> None:
    policy = RetryPolicy(max_attempts=2)  # bounds retries of a call, never a user's next session
    rng = random.Random(3)
    for category in ("http 404", "bad json", "close 4401", "resp 400", "http 503", "refused"):
        assert [policy.session_pause(category, n) for n in (1, 2, 3)] == [5.0, 10.0, 15.0], category
        assert all(15.0 <= policy.session_pause(category, n, rng=rng) <= 600.0 for n in range(4, 30))
    assert policy.session_pause("handshake 429", 1, retry_after=3.0) == 3.0
    assert policy.session_pause("http 429", 7) == 1.0  # throttled: its own rule, at least a second
    assert policy.session_pause("http 429", 1, retry_after=120.0) == 120.0  # the server's word, over our cap...
    assert RetryPolicy(backoff_cap_s=1.0).session_pause("http 503", 1, retry_after=30.0) == 30.0
    assert policy.session_pause("http 429", 1, retry_after=86400.0) == 3600.0  # ... up to an hour
    fast = RetryPolicy(server_error_pauses=(0.2,), backoff_base_s=1.0, backoff_cap_s=1.0)
    assert all(0.2 <= fast.session_pause("timeout", n, rng=rng) <= 1.0 for n in range(2, 20))


def test_breaker_says_when_the_target_is_back_and_replaces_a_lost_probe() -> None:
    breaker = CircuitBreaker(window=4, min_calls=4, threshold=0.75, open_s=1.0, probe_timeout_s=10.0)
    assert [breaker.record(True, 0.0) for _ in range(4)][-1] is True
    assert breaker.wait(1.0) == 0.0  # the probe goes... and its user is stopped before it reports
    assert breaker.wait(5.0) > 0.0  # others wait for it
    assert breaker.wait(11.0) == 0.0  # past the probe timeout: another probe
    breaker.record(False, 11.1)
    assert breaker.state(11.1) is Breaker.CLOSED and breaker.recoveries == 1


def test_breaker_can_be_tripped_by_who_knows_the_target_is_gone() -> None:
    breaker = CircuitBreaker()
    assert breaker.trip(0.0) is True and breaker.trip(0.1) is False  # once per outage
    assert breaker.state(1.0) is Breaker.OPEN and breaker.trips == 1
