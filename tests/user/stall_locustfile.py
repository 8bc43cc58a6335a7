"""The harness's locustfile, with the load generator starved on purpose.

``LP_TEST_STALL_S``: one second into the test a greenlet holds the gevent loop busy for that many
seconds without yielding, as a saturated generator's loop is held by its own work: every latency
measured meanwhile includes the stall, and the run's ``load_generator`` verdict must say so, and when.

``LP_TEST_DUTY`` (a fraction) and ``LP_TEST_PIN_CORE``: a greenlet keeps the loop busy that share
of every 10 ms, yielding in between, in a process pinned to one core: alone there, the loop has
work that share of the time and runs all of it; beside a busy process, it gets about half the core
and the same work takes twice the wall time, which is what a starved generator looks like.

``LP_TEST_GC_OBJECTS``: one second into the test, that many reference cycles are made and a full
collection is run over them, as a big heap's collection stops the loop; the time it took is written
to ``LP_TEST_GC_REPORT``, for the test to find in the run's ``load_generator``.
"""

import gc
import os
import time
from pathlib import Path

import gevent
from locust import events

from harness.user.locustfile import ConsumerUser

__all__ = ["ConsumerUser"]

if os.environ.get("LP_TEST_PIN_CORE"):
    os.sched_setaffinity(0, {int(os.environ["LP_TEST_PIN_CORE"])})


def _burn(seconds: float, clock=time.perf_counter) -> None:  # noqa: ANN001
    until = clock() + seconds
    while clock() < until:  # CPU-bound, never yields: the loop stands still
        pass


def _stall(seconds: float) -> None:
    gevent.sleep(1.0)
    _burn(seconds)


def _duty(share: float, period_s: float = 0.01) -> None:
    while True:  # killed with the test (test_stop)
        _burn(share * period_s, time.thread_time)  # that much CPU, however long the core takes to give it
        gevent.sleep((1.0 - share) * period_s)


def _collect(objects: int) -> None:
    gevent.sleep(1.0)
    heap = []
    for _ in range(objects):
        cycle: list = []
        cycle.append(cycle)
        heap.append(cycle)
    started = time.perf_counter()
    gc.collect()
    took_ms = (time.perf_counter() - started) * 1000.0
    Path(os.environ["LP_TEST_GC_REPORT"]).write_text(f"{took_ms:.3f}")
    del heap


_greenlets: list[gevent.Greenlet] = []


@events.test_start.add_listener
def _starve(**_: object) -> None:
    stall = float(os.environ.get("LP_TEST_STALL_S", "3"))
    if stall > 0:
        _greenlets.append(gevent.spawn(_stall, stall))
    if os.environ.get("LP_TEST_GC_OBJECTS"):
        _greenlets.append(gevent.spawn(_collect, int(os.environ["LP_TEST_GC_OBJECTS"])))
    if os.environ.get("LP_TEST_DUTY"):
        _greenlets.append(gevent.spawn(_duty, float(os.environ["LP_TEST_DUTY"])))


@events.test_stop.add_listener
def _stop(**_: object) -> None:
    for greenlet in _greenlets:
        greenlet.kill(block=False)
    _greenlets.clear()
