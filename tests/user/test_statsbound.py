"""Locust's per-second request counts stay a minute long, and the live RPS still reads right."""

from __future__ import annotations

import time

from locust.env import Environment

from harness.user import statsbound


def test_counts_older_than_a_minute_go_and_the_live_rps_is_unchanged() -> None:
    env = Environment()
    for _ in range(30):
        env.stats.log_request("socket", "ping", 1.0, 0)
    env.stats.log_error("socket", "ping", "pong timeout")
    entry = env.stats.get("ping", "socket")
    # an hour of seconds, as a soak leaves them
    now = int(time.time())
    for second in range(now - 3600, now - 100):
        entry.num_reqs_per_sec[second] += 1
        env.stats.total.num_reqs_per_sec[second] += 1
    rps = entry.current_rps
    dropped = statsbound.prune(env)
    assert dropped == 2 * (3600 - 100)
    assert min(entry.num_reqs_per_sec) >= now - statsbound.KEEP_S and entry.current_rps == rps
    assert entry.num_requests == 30 and entry.num_failures == 1  # the totals are not touched
    assert statsbound.prune(env) == 0
