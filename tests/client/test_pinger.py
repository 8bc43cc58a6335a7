"""The process-wide ping scheduler on its own, with stand-in sockets: order, resilience, compaction.

A fresh :class:`PingScheduler` per test (not the hub's shared one), so the real sockets of other
tests never share its heap.
"""

from __future__ import annotations

import gevent
import pytest

from harness.client.pinger import COMPACT_AFTER, PingScheduler, clock, scheduler


class FakeSocket:
    """A :class:`~harness.client.pinger.Pinged`: records its ticks, asks again ``every`` s, ``times`` times."""

    def __init__(self, name: str, log: list[str], every: float = 0.01, times: int = 1) -> None:
        self.name = name
        self.log = log
        self.every = every
        self.left = times
        self.keeps_pinging = True

    def keepalive_tick(self, now: float) -> float | None:
        self.log.append(self.name)
        self.left -= 1
        if self.left <= 0:
            self.keeps_pinging = False
            return None
        return now + self.every


def _drain(sched: PingScheduler, timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout):
        while len(sched):
            gevent.sleep(0.005)


def test_ticks_come_in_due_order_and_repeat_until_declined() -> None:
    sched = PingScheduler()
    log: list[str] = []
    now = clock()
    sched.add(FakeSocket("late", log), now + 0.05)
    sched.add(FakeSocket("early", log), now + 0.01)
    sched.add(FakeSocket("twice", log, every=0.1, times=2), now + 0.02)
    _drain(sched)
    assert log == ["early", "twice", "late", "twice"]


def test_a_failing_tick_stops_only_its_own_socket(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeSocket):
        def keepalive_tick(self, now: float) -> float | None:
            raise RuntimeError("bug in one socket")

    sched = PingScheduler()
    log: list[str] = []
    now = clock()
    sched.add(Broken("broken", log), now)
    sched.add(FakeSocket("fine", log, times=3), now + 0.01)
    _drain(sched)
    assert log == ["fine", "fine", "fine"]
    assert "keepalive tick failed" in caplog.text


def test_ended_entries_are_compacted_long_before_they_are_due() -> None:
    sched = PingScheduler()
    log: list[str] = []
    later = clock() + 0.2  # not due before the checks below (they never yield to the scheduler)
    sockets = [FakeSocket(str(i), log) for i in range(COMPACT_AFTER * 2)]
    for s in sockets:
        sched.add(s, later)
    for s in sockets[: COMPACT_AFTER + 1]:
        s.keeps_pinging = False
        sched.discard()
    assert len(sched) == len(sockets) - (COMPACT_AFTER + 1)
    assert log == []  # nothing was due: only the ended entries went
    _drain(sched)
    assert len(log) == len(sockets) - (COMPACT_AFTER + 1)


def test_one_scheduler_per_hub() -> None:
    assert scheduler() is scheduler()
