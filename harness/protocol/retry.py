"""When to try a failed call again, per LivePerson's retry guidance, and when a target is down.

LivePerson's retry-policy recommendations (lp-protocol.md 3.4, tag RETRY): a 4xx is the client's
error and is not retried; a 429 means throttled: wait, at least one second (longer when
``Retry-After`` says so, in seconds or as an HTTP date); a 5xx is retried three times after 5, 10
and 15 s, then with exponential backoff. Connections that fail without an answer (refused,
reset, timed out) are treated like a 5xx. Everything here is pure: the caller brings the clock
(``now``) and the randomness (``rng``), so a test can replay any schedule exactly.

A load generator never stops trying for good, so "do not retry" means: the next session is a new
one, and it still waits the same schedule (:meth:`RetryPolicy.session_pause`). No user ever tries
again sooner than the policy allows, whatever failed. :class:`CircuitBreaker` is for the crowd:
when most recent attempts to a host got no answer, all its users wait for one probe.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

TRANSPORT_FAILURES: Final = frozenset({"refused", "dropped", "timeout", "tls"})
SOCKET_ENDS: Final = ("close ", "pong timeout")  # the socket ended under the call: like a drop, worth a new one
NO_ANSWER: Final = frozenset({"refused", "dropped", "timeout"})  # what the circuit breaker counts against a host
DEFAULT_PAUSES: Final = (5.0, 10.0, 15.0)
MAX_RETRY_AFTER_S: Final = 3600.0  # a server's Retry-After is honoured up to an hour (a day would stall the run)


def parse_pauses(text: str) -> tuple[float, ...]:
    """``"5,10,15"`` -> (5.0, 10.0, 15.0); ValueError unless one or more finite numbers >= 0."""
    items = [part.strip() for part in str(text).replace(";", ",").split(",") if part.strip()]
    if not items:
        raise ValueError("no pause given")
    pauses = tuple(float(item) for item in items)
    if any(not math.isfinite(p) or p < 0 for p in pauses):
        raise ValueError("pauses must be finite numbers of seconds >= 0")
    return pauses


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
    """The HTTP status in a failure category (``"http 503"``, ``"handshake 429"``, a socket
    response's ``"resp 500"``: its codes have HTTP's meaning, lp-protocol.md 3.4), else None."""
    kind, _, rest = category.partition(" ")
    if kind in ("http", "handshake", "resp") and rest.isdigit():
        return int(rest)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How long to pause before attempt ``n + 1`` of a call whose attempt ``n`` failed."""

    server_error_pauses: tuple[float, ...] = DEFAULT_PAUSES
    backoff_base_s: float = 120.0  # after the fixed pauses: full jitter up to base * 2**k (the 2, 4, 8 min of RETRY)...
    backoff_cap_s: float = 600.0  # ... never above this (a server's Retry-After is its own: honoured)
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
        told = min(retry_after or 0.0, MAX_RETRY_AFTER_S)  # the server said how long: honoured
        status = status_of(category)
        if status == 429:
            return max(self.throttle_min_s, told)
        if status is not None and 400 <= status < 500:
            return None
        if status is None and category not in TRANSPORT_FAILURES and not category.startswith(SOCKET_ENDS):
            return None  # a protocol failure (bad json, resp 400...): trying again would fail the same way
        return max(self.backoff(attempt, rng), told)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The pause after failed attempt ``attempt`` (1-based) of a call worth retrying.

        The fixed pauses first (5, 10, 15 s); then full jitter: uniform up to base * 2**k, capped,
        but never below the last fixed pause, so backing off never speeds the retries up again.
        """
        fixed = self.server_error_pauses
        if attempt <= len(fixed):
            return fixed[max(attempt, 1) - 1]
        floor = fixed[-1] if fixed else 0.0
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (attempt - len(fixed) - 1))
        return (rng or random).uniform(min(floor, ceiling), max(floor, ceiling))

    def session_pause(
        self, category: str, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The pause before a user's next session after its session failed with ``category``.

        :meth:`pause` where the call is worth retrying; for a failure that is not (a 4xx, a
        protocol failure) the next session is a new one, and it waits the same schedule all the
        same (5, 10, 15 s, then backoff), so a user that keeps failing never loops faster than
        the policy, whatever fails. ``max_attempts`` does not apply: a user never gives up.
        """
        policy = replace(self, max_attempts=0) if self.max_attempts else self
        wait = policy.pause(category, attempt, retry_after=retry_after, rng=rng)
        if wait is None:
            wait = max(self.backoff(attempt, rng), min(retry_after or 0.0, MAX_RETRY_AFTER_S))
        return wait


def reconnect_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """The pause before reconnect ``attempt`` (1-based) after a socket ended: LivePerson's "wait
    briefly and reconnect" (lp-protocol.md 3.5), doubling per try, jittered between half and all
    of it so that sockets dropped together do not come back together; never above ``cap_s``."""
    ceiling = min(cap_s, base_s * 2.0 ** (max(attempt, 1) - 1))
    return (rng or random).uniform(ceiling / 2.0, ceiling)


class Breaker(Enum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # the target is presumed down: calls wait
    HALF_OPEN = "half-open"  # one probe call may go through


class CircuitBreaker:
    """Stops a crowd of users hammering a dead target: trips when most recent attempts failed.

    It trips when at least ``min_calls`` of the last ``window`` attempts were made and the
    share that failed without an answer reaches ``threshold``. While open, callers wait; after
    ``open_s`` one probe goes through (half-open); a success closes the breaker, a failure
    opens it again for twice as long (capped at ``max_open_s``). A probe whose outcome is never
    recorded (its caller was stopped) is given up after ``probe_timeout_s``: another one goes.
    """

    def __init__(
        self,
        window: int = 50,
        min_calls: int = 20,
        threshold: float = 0.8,
        open_s: float = 5.0,
        max_open_s: float = 60.0,
        probe_timeout_s: float = 30.0,
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
        self.probe_timeout_s = probe_timeout_s
        self.probe_at = 0.0
        self.trips = 0
        self.recoveries = 0  # times a probe's success closed it again (the target is back)

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
        if state is Breaker.HALF_OPEN and (not self.probing or now - self.probe_at >= self.probe_timeout_s):
            self.probing, self.probe_at = True, now
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
                    self.recoveries += 1
            return False
        self.results.append(failed)
        if len(self.results) >= self.min_calls and sum(self.results) >= self.threshold * len(self.results):
            self.opened_at = now
            self.trips += 1
            return True
        return False

    def trip(self, now: float) -> bool:
        """Open it now, whatever the recent attempts say (the caller knows the target is gone); True if it was closed."""
        if self.opened_at is not None:
            return False
        self.opened_at = now
        self.trips += 1
        return True

    def _close(self) -> None:
        self.opened_at = None
        self.open_s = self.base_open_s
        self.results.clear()
