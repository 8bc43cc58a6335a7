"""When to try a failed call again, per LivePerson's retry guidance, and when a target is down.

LivePerson's retry-policy recommendations (lp-protocol.md 3.4, tag RETRY): a 4xx is the client's
error and is not retried; a 429 means throttled: wait, at least one second (longer when
``Retry-After`` says so, in seconds or as an HTTP date); a 5xx is retried three times after 5, 10
and 15 s, then with exponential backoff. Connections that fail without an answer (refused,
reset, timed out) are treated like a 5xx. Everything here is pure: the caller brings the clock
(``now``) and the randomness (``rng``), so a test can replay any schedule exactly.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

TRANSPORT_FAILURES: Final = frozenset({"refused", "dropped", "timeout", "tls"})


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def status_of(category: str) -> int | None:
    """The HTTP status in a failure category (``"http 503"``, ``"handshake 429"``), else None."""
    kind, _, rest = category.partition(" ")
    if kind in ("http", "handshake") and rest.isdigit():
        return int(rest)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How long to pause before attempt ``n + 1`` of a call whose attempt ``n`` failed."""

    server_error_pauses: tuple[float, ...] = (5.0, 10.0, 15.0)
    backoff_base_s: float = 120.0  # after the fixed pauses: full jitter over base * 2**k (the 2, 4, 8 min of RETRY)...
    backoff_cap_s: float = 600.0  # ... never above this
    throttle_min_s: float = 1.0  # a 429 waits at least this long
    max_attempts: int = 0  # 0: keep trying (with backoff) for as long as the run lasts

    def pause(
        self, category: str, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None: do not retry.

        ``attempt`` counts the failed attempts so far (1 after the first failure).
        """
        if self.max_attempts and attempt >= self.max_attempts:
            return None
        status = status_of(category)
        if status == 429:
            return max(self.throttle_min_s, retry_after or 0.0)
        if status is not None and 400 <= status < 500:
            return None
        if status is None and category not in TRANSPORT_FAILURES:
            return None  # a protocol failure (bad json, resp 400...): trying again would fail the same way
        fixed = self.server_error_pauses
        if attempt <= len(fixed):
            wait = fixed[attempt - 1]
        else:
            ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (attempt - len(fixed) - 1))
            wait = (rng or random).uniform(0.0, ceiling)  # full jitter
        return max(wait, retry_after or 0.0)


class Breaker(Enum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # the target is presumed down: calls wait
    HALF_OPEN = "half-open"  # one probe call may go through


class CircuitBreaker:
    """Stops a crowd of users hammering a dead target: trips when most recent attempts failed.

    It trips when at least ``min_calls`` of the last ``window`` attempts were made and the
    share that failed without an answer reaches ``threshold``. While open, callers wait; after
    ``open_s`` one probe goes through (half-open); a success closes the breaker, a failure
    opens it again for twice as long (capped at ``max_open_s``).
    """

    def __init__(
        self, window: int = 50, min_calls: int = 20, threshold: float = 0.8, open_s: float = 5.0, max_open_s: float = 60.0
    ) -> None:
        self.window = window
        self.min_calls = min_calls
        self.threshold = threshold
        self.base_open_s = open_s
        self.max_open_s = max_open_s
        self.open_s = open_s
        self.results: deque[bool] = deque(maxlen=window)  # True: the attempt failed without an answer
        self.opened_at: float | None = None
        self.probing = False
        self.trips = 0

    def state(self, now: float) -> Breaker:
        if self.opened_at is None:
            return Breaker.CLOSED
        if now - self.opened_at >= self.open_s:
            return Breaker.HALF_OPEN
        return Breaker.OPEN

    def wait(self, now: float) -> float:
        """Seconds a caller must wait before its attempt (0: go ahead). The first caller after
        the open period is the probe; the others wait for its outcome."""
        state = self.state(now)
        if state is Breaker.CLOSED:
            return 0.0
        assert self.opened_at is not None
        if state is Breaker.HALF_OPEN and not self.probing:
            self.probing = True
            return 0.0
        return max(0.05, self.opened_at + self.open_s - now) if state is Breaker.OPEN else self.open_s / 10

    def record(self, failed: bool, now: float) -> bool:
        """Record one attempt's outcome; True when this outcome tripped the breaker open."""
        if self.opened_at is not None:
            if self.probing or self.state(now) is Breaker.HALF_OPEN:
                self.probing = False
                if failed:
                    self.opened_at = now
                    self.open_s = min(self.max_open_s, self.open_s * 2)
                else:
                    self._close()
            return False
        self.results.append(failed)
        if len(self.results) >= self.min_calls and sum(self.results) >= self.threshold * len(self.results):
            self.opened_at = now
            self.trips += 1
            return True
        return False

    def _close(self) -> None:
        self.opened_at = None
        self.open_s = self.base_open_s
        self.results.clear()
