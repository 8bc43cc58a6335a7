"""Keepalive deadlines as pure functions of a ``now`` the caller passes in (no clock here).

The client pings every ``interval`` seconds and presumes the server dead when a pong is not
back within ``pong_timeout`` (default: before the next ping is due); the server closes a socket
that sent nothing for ``idle_timeout`` seconds. Both sides use the same numbers and the same
arithmetic; the I/O layers only bring the time and the wake-ups.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

DEFAULT_PING_INTERVAL: Final = 60.0  # the tutorial's `wscat -k 60`


class Due(Enum):
    """What a keepalive check asks the I/O layer to do now."""

    NOTHING = "nothing"  # not yet: look again at the returned time
    PING = "ping"  # send a ping now
    DEAD = "dead"  # the pong is overdue: give the connection up


class Keepalive:
    """One socket's ping/pong schedule. Times are seconds on any one monotonic clock."""

    __slots__ = ("interval", "pong_timeout", "next_ping", "ping_sent", "pong_deadline")

    def __init__(self, interval: float, pong_timeout: float | None, now: float) -> None:
        self.interval = interval
        self.pong_timeout = pong_timeout if pong_timeout and pong_timeout > 0 else interval
        self.next_ping = now + interval
        self.ping_sent: float | None = None  # when the ping now out was sent
        self.pong_deadline = 0.0

    @property
    def awaiting_pong(self) -> bool:
        return self.ping_sent is not None

    def check(self, now: float) -> tuple[Due, float]:
        """What is due at ``now``, and when to look again (for NOTHING)."""
        if self.ping_sent is not None:
            if now >= self.pong_deadline:
                return Due.DEAD, now
            return Due.NOTHING, self.pong_deadline
        if now < self.next_ping:
            return Due.NOTHING, self.next_ping
        return Due.PING, now

    def ping_sent_at(self, now: float) -> float:
        """Record a ping written at ``now``; returns when to look again."""
        self.ping_sent = now
        self.pong_deadline = now + self.pong_timeout
        self.next_ping = now + self.interval
        return min(self.pong_deadline, self.next_ping)

    def pong_received(self, now: float) -> float | None:
        """The round trip of the ping now out, or None for an unsolicited (or late) pong."""
        sent = self.ping_sent
        if sent is None:
            return None
        self.ping_sent = None
        return now - sent

    def give_up(self) -> None:
        """Forget the ping now out (the connection is being aborted)."""
        self.ping_sent = None


def idle_deadline(last_activity: float, idle_timeout: float) -> float:
    """When a socket that was last heard from at ``last_activity`` is idle (server side)."""
    return last_activity + idle_timeout


def is_idle(now: float, last_activity: float, idle_timeout: float) -> bool:
    return now >= idle_deadline(last_activity, idle_timeout)


def expires_in(exp: float, now: float) -> float:
    """Seconds until a token with claim ``exp`` expires (never negative)."""
    return max(0.0, exp - now)
