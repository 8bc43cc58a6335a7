"""A per-account request rate limit (``--rate-limit``): LivePerson's "bursty traffic may be throttled".

One token bucket per account: ``rate`` tokens a second, holding at most one second's worth (a
burst of ``rate`` requests, at least 1). A request takes a token; with none left it is refused
with 429 and ``Retry-After`` (whole seconds until the next token, at least 1). The buckets of
the accounts seen least recently are forgotten beyond ``max_accounts`` (bounded memory: without
``--account`` any account name is served). Plain Python; the clock is passed in.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ACCOUNTS = 4096


class RateLimiter:
    """Token buckets per account."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, max_accounts: int = MAX_ACCOUNTS) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.clock = clock
        self.max_accounts = max_accounts
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # account -> [tokens, when counted]

    def check(self, account: str) -> int | None:
        """None when ``account`` may make a request now (a token is taken), else the Retry-After seconds."""
        now = self.clock()
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = [self.burst, now]
            if len(self._buckets) > self.max_accounts:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(account)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate))
