"""Per-phase session accounting, socket and ping gauges: what Locust's request stats cannot say.

A session fails at most once, in one phase, with one category. Each process keeps a
:class:`HarnessMetrics`; workers send theirs (cumulative values, so a lost or repeated report
cannot double-count) with every stats report, and the master sums the latest from each worker.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PhaseCounts:
    sessions: int = 0  # sessions that started the phase
    failures: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    # Sessions whose phase went wrong only after the test began to stop (k6's "interrupted
    # iterations"): thousands of users closing at once load the load generator itself, so a
    # close that times out then says nothing about the target. Not failures, shown apart.
    interrupted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "failures": self.failures,
            "fail_ratio": self.failures / self.sessions if self.sessions else 0.0,
            "categories": dict(self.categories.most_common()),
            "interrupted": self.interrupted,
        }


@dataclass
class HarnessMetrics:
    """Counters of one process (or, on a master, the sum over its workers)."""

    token: PhaseCounts = field(default_factory=PhaseCounts)
    socket: PhaseCounts = field(default_factory=PhaseCounts)
    sockets_open: int = 0
    sockets_peak: int = 0
    sockets_opened: int = 0
    drops: int = 0
    server_closes: Counter[str] = field(default_factory=Counter)
    pings_sent: int = 0
    pings_answered: int = 0
    pong_timeouts: int = 0
    started_at: float = field(default_factory=time.time)
    live_sockets: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet, repr=False)  # for live ping counts
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- recording (called from user greenlets and client callbacks)
    def phase(self, name: str) -> PhaseCounts:
        return self.token if name == "token" else self.socket

    def start_phase(self, name: str) -> None:
        self.phase(name).sessions += 1

    def fail_phase(self, name: str, category: str) -> None:
        counts = self.phase(name)
        counts.failures += 1
        counts.categories[category] += 1

    def interrupt_phase(self, name: str) -> None:
        self.phase(name).interrupted += 1

    def socket_opened(self) -> None:
        self.sockets_opened += 1
        self.sockets_open += 1
        self.sockets_peak = max(self.sockets_peak, self.sockets_open)

    def socket_closed(self, how: str, code: int | None) -> None:
        """``how``: clean (we closed), server (close frame with ``code``) or dropped (no close frame)."""
        self.sockets_open = max(0, self.sockets_open - 1)
        if how == "dropped":
            self.drops += 1
        elif how == "server" and code is not None:
            self.server_closes[str(code)] += 1

    def reset(self) -> None:
        fresh = HarnessMetrics()
        fresh.sockets_open = self.sockets_open  # gauges survive a stats reset; counters start again
        fresh.sockets_peak = self.sockets_open
        # pings that held sockets sent before the reset belong to before it
        fresh.pings_sent = -sum(getattr(s, "pings_sent", 0) for s in list(self.live_sockets))
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k not in ("_lock", "live_sockets")})

    # --- reporting
    def to_dict(self) -> dict[str, Any]:
        elapsed_h = max(time.time() - self.started_at, 1e-9) / 3600.0
        return {
            "phases": {"token": self.token.to_dict(), "socket": self.socket.to_dict()},
            "sockets": {
                "open": self.sockets_open,
                "peak_open": self.sockets_peak,
                "opened": self.sockets_opened,
                "drops": self.drops,
                "server_closes": dict(self.server_closes),
                "drops_per_hour": self.drops / elapsed_h,
            },
            "pings": {
                "sent": self.pings_sent + sum(getattr(s, "pings_sent", 0) for s in list(self.live_sockets)),
                "answered": self.pings_answered,
                "timeouts": self.pong_timeouts,
            },
            "started_at": self.started_at,
        }

    @classmethod
    def sum(cls, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Sum several processes' ``to_dict()`` outputs into one (the master's view)."""
        total = cls()
        if parts:
            total.started_at = min(p.get("started_at", total.started_at) for p in parts)
        for part in parts:
            for name in ("token", "socket"):
                src = part["phases"][name]
                dst = total.phase(name)
                dst.sessions += src["sessions"]
                dst.failures += src["failures"]
                dst.interrupted += src.get("interrupted", 0)
                dst.categories.update(src["categories"])
            sockets = part["sockets"]
            total.sockets_open += sockets["open"]
            total.sockets_peak += sockets["peak_open"]  # upper bound: workers peak independently
            total.sockets_opened += sockets["opened"]
            total.drops += sockets["drops"]
            total.server_closes.update(sockets["server_closes"])
            pings = part["pings"]
            total.pings_sent += pings["sent"]
            total.pings_answered += pings["answered"]
            total.pong_timeouts += pings["timeouts"]
        return total.to_dict()
