"""The process-wide ping scheduler: one greenlet and one heap for the keepalive of every socket.

A greenlet or a timer per socket would cost memory per held session (a parked greenlet is
several KB) and a wake-up per ping; the scheduler holds one heap entry per socket instead and
asks each socket, when its entry is due, to do its keepalive step (a non-blocking ping write,
or giving up on a missing pong). ``bench/client_hold.py`` measures the CPU share of holding
thousands of sockets at short ping intervals; ``bench/results/locust-capacity.md`` has the
figures.

The scheduler knows sockets only as :class:`Pinged` (two members), so it depends on no socket
class. All due times are on :data:`clock`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from typing import Final, Protocol

import gevent
import gevent.event

log = logging.getLogger(__name__)

clock: Final = time.perf_counter  # the one clock of due times (and of RTTs, in the socket)
MIN_SLEEP: Final = 0.001  # pings due within one sleep are sent together (<=1 ms late)
BATCH: Final = 512  # ticks between yields to the readers in a large batch
COMPACT_AFTER: Final = 256  # ended entries tolerated before the heap is compacted


class Pinged(Protocol):
    """What the scheduler needs of a socket."""

    @property
    def keeps_pinging(self) -> bool:
        """False once the socket has ended, or is closing: its entry may be dropped."""
        ...

    def keepalive_tick(self, now: float) -> float | None:
        """Do what is due at ``now``; the next due time, or None when no more ticks are wanted."""
        ...


class PingScheduler:
    """One greenlet for the pings of every socket in the process (a heap, one entry per socket)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Pinged]] = []
        self._seq = itertools.count()
        self._wake = gevent.event.Event()
        self._runner: gevent.Greenlet | None = None
        self._sleeping_until = float("inf")
        self._ended = 0  # entries of ended sockets still in the heap (an upper bound)

    def add(self, sock: Pinged, due: float) -> None:
        """Tick ``sock`` at ``due`` (on :data:`clock`), and then whenever its tick says."""
        heapq.heappush(self._heap, (due, next(self._seq), sock))
        if self._runner is None:
            self._runner = gevent.spawn(self._run)
        elif due < self._sleeping_until:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._heap)

    def discard(self) -> None:
        """A socket ended: its entry goes at its due time, or sooner when ended ones pile up.

        Without this a churn run (sessions far shorter than the ping interval) would keep every
        ended socket alive in the heap for up to one interval.
        """
        self._ended += 1
        if self._ended > COMPACT_AFTER and self._ended * 2 > len(self._heap):
            self._heap[:] = [e for e in self._heap if e[2].keeps_pinging]
            heapq.heapify(self._heap)
            self._ended = 0

    def _run(self) -> None:
        heap = self._heap
        try:
            while heap:
                now = clock()
                due = heap[0][0]
                if due > now:
                    self._sleeping_until = now + max(due - now, MIN_SLEEP)
                    self._wake.clear()
                    self._wake.wait(self._sleeping_until - now)
                    self._sleeping_until = float("inf")
                    continue
                ticks = 0
                while heap and heap[0][0] <= now:
                    sock = heapq.heappop(heap)[2]
                    try:
                        nxt = sock.keepalive_tick(now)
                    except Exception:  # never let one socket stop everyone's pings
                        log.exception("keepalive tick failed")
                        nxt = None
                    if nxt is not None:
                        heapq.heappush(heap, (nxt, next(self._seq), sock))
                    elif self._ended:
                        self._ended -= 1
                    ticks += 1
                    if ticks % BATCH == 0:
                        gevent.sleep(0)  # let readers run between large batches
        finally:
            self._runner = None


_SCHEDULERS: dict[int, PingScheduler] = {}


def scheduler() -> PingScheduler:
    """This hub's scheduler (one per thread that runs a gevent hub)."""
    hub = id(gevent.get_hub())
    sched = _SCHEDULERS.get(hub)
    if sched is None:
        sched = _SCHEDULERS[hub] = PingScheduler()
    return sched
