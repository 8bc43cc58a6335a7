"""How much of the time the gevent loop has work: its utilization, and the CPU it is denied.

CPU and loop lag miss two ways a generator inflates its latencies. A loop busy 80 % of the time
queues its own work (a single server at 80 % load waits four service times on average) while
its CPU reads under 90 % and its timer is rarely late by 50 ms. And a process that shares its
core with another gets half the core: its CPU reads 50 %, yet its loop has work nearly all the
time. Both show in the loop's utilization, as Node.js's ``eventLoopUtilization`` reports it: the
share of wall time the loop is not waiting in its poll.

Two libev watchers bracket the poll: a *prepare* watcher at the lowest priority runs last before
the loop blocks (after gevent's own callbacks), a *check* watcher at the highest runs first after
it wakes. The time between them is idle; the rest is busy. Busy wall time the process did not
spend on the CPU is time it was runnable but not running (or blocked in a system call): starved.
"""

from __future__ import annotations

import time
from typing import Any, Final

import gevent

_LOWEST: Final = -2  # libev's EV_MINPRI
_HIGHEST: Final = 2  # libev's EV_MAXPRI


class LoopMeter:
    """Cumulative idle seconds of this process's gevent loop (its hub), from the poll's two sides."""

    def __init__(self) -> None:
        self.idle_s = 0.0
        self._polling_since: float | None = None
        self._watchers: list[Any] = []

    def start(self) -> LoopMeter:
        if not self._watchers:
            loop = gevent.get_hub().loop
            before = loop.prepare(ref=False, priority=_LOWEST)
            after = loop.check(ref=False, priority=_HIGHEST)
            before.start(self._before_poll)
            after.start(self._after_poll)
            self._watchers = [before, after]
        return self

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self._watchers = []

    def _before_poll(self) -> None:
        self._polling_since = time.perf_counter()

    def _after_poll(self) -> None:
        since = self._polling_since
        if since is not None:
            self.idle_s += time.perf_counter() - since
            self._polling_since = None

    def idle_now(self) -> float:
        """Idle seconds so far, counting a poll still waiting (the meter is read from the loop)."""
        since = self._polling_since
        return self.idle_s + (time.perf_counter() - since if since is not None else 0.0)


def shares(wall_s: float, idle_s: float, cpu_s: float) -> tuple[float, float]:
    """(busy %, starved %) of one interval: busy wall time, and the part of it spent off the CPU."""
    if wall_s <= 0:
        return 0.0, 0.0
    busy = min(1.0, max(0.0, 1.0 - idle_s / wall_s))
    starved = max(0.0, busy - min(1.0, cpu_s / wall_s))
    return round(busy * 100.0, 1), round(starved * 100.0, 1)
