"""The harness's locustfile, with the load generator starved on purpose.

One second into the test a greenlet holds the gevent loop busy for ``LP_TEST_STALL_S`` seconds
without yielding, as a saturated generator's loop is held by its own work: every latency measured
meanwhile includes the stall, and the run's ``load_generator`` verdict must say so, and when.
"""

import os
import time

import gevent
from locust import events

from harness.user.locustfile import ConsumerUser

__all__ = ["ConsumerUser"]


def _stall(seconds: float) -> None:
    gevent.sleep(1.0)
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:  # CPU-bound, never yields: the loop stands still
        pass


@events.test_start.add_listener
def _starve(**_: object) -> None:
    gevent.spawn(_stall, float(os.environ.get("LP_TEST_STALL_S", "3")))
