"""Locust's one unbounded growth in a long run, bounded: the per-second request counts of every entry.

Each stats entry keeps ``num_reqs_per_sec`` and ``num_fail_per_sec``, a count for every second of
the whole run, while only the last 12 seconds are ever read (``current_rps``,
``current_fail_per_sec``: the live RPS of the web UI and the console). Over a soak of hours that is
thousands of dict entries per step, and the locust process grows by megabytes an hour for nothing.
Every process prunes the seconds older than :data:`KEEP_S` every :data:`EVERY_S`; a worker's
counts reach the master within seconds, so a minute is ample on both sides.
"""

from __future__ import annotations

import time
from typing import Any, Final

import gevent
from locust.env import Environment

KEEP_S: Final = 60  # seconds of per-second counts kept (Locust reads the last 12)
EVERY_S: Final = 30.0


def prune(environment: Environment, now: float | None = None) -> int:
    """Drop the per-second counts older than :data:`KEEP_S` from every entry; returns how many went."""
    horizon = int(time.time() if now is None else now) - KEEP_S
    stats, dropped = environment.stats, 0
    for entry in [stats.total, *stats.entries.values()]:
        for per_second in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
            old = [second for second in per_second if second < horizon]
            for second in old:
                del per_second[second]
            dropped += len(old)
    return dropped


def install(environment: Environment) -> gevent.Greenlet:
    """Prune every :data:`EVERY_S` seconds for the life of the process."""

    def loop(**_: Any) -> None:
        while True:
            gevent.sleep(EVERY_S)
            prune(environment)

    return gevent.spawn(loop)
