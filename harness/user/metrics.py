"""Per-phase session accounting, socket and ping gauges: what Locust's request stats cannot say.

A session fails at most once, in one phase, with one category. The conversations the users opened
(and how each ended: closed, closed by the cleanup, left open and why) and the backoff (pauses,
circuit-breaker trips), the reconnects and the messages are counted here too, apart from the steps. Each process keeps a
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
class ConversationCounts:
    """What the users opened on the target and whether they left it clean (docs/reports.md, "Cleanup")."""

    opened: int = 0
    closed: int = 0  # closed, by the session itself or by the cleanup (confirmed by the server)
    closed_by_cleanup: int = 0  # of which the cleanup closed them, or found them closed already
    left_open: int = 0
    left_open_reasons: Counter[str] = field(default_factory=Counter)  # "resp 500", "refused", "stopped: timeout"...
    cleanups: int = 0  # conversations handed to the cleanup
    cleanup_attempts: int = 0  # its tries (each a new connection)
    cleanup_calls: Counter[str] = field(default_factory=Counter)  # ledger target -> calls the cleanup made
    cleanup_failures: Counter[str] = field(default_factory=Counter)  # category -> failed cleanup tries
    not_found: int = 0  # of closed_by_cleanup: answered 404 and not among the consumer's conversations
    unconfirmed: int = 0  # requests whose answer never came and no cleanup try could ask whether they opened one
    open: int = 0  # gauge: opened (or reused) and not yet closed or given up
    reused: int = 0  # found OPEN by a realistic session (opened earlier, not by this run's request) and carried on

    def opened_one(self) -> None:
        self.opened += 1
        self.open += 1

    def reused_one(self) -> None:
        self.reused += 1
        self.open += 1

    def closed_one(self, *, by_cleanup: bool = False) -> None:
        self.closed += 1
        self.closed_by_cleanup += by_cleanup
        self.open = max(0, self.open - 1)

    def left_one(self, reason: str) -> None:
        self.left_open += 1
        self.left_open_reasons[reason] += 1
        self.open = max(0, self.open - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "closed": self.closed,
            "closed_by_cleanup": self.closed_by_cleanup,
            "left_open": self.left_open,
            "left_open_reasons": dict(self.left_open_reasons.most_common()),
            "open": self.open,
            "reused": self.reused,
            "cleanup": {
                "conversations": self.cleanups,
                "attempts": self.cleanup_attempts,
                "calls": dict(sorted(self.cleanup_calls.items())),
                "failures": dict(self.cleanup_failures.most_common()),
                "not_found": self.not_found,
                "unconfirmed": self.unconfirmed,
            },
        }

    def add(self, part: dict[str, Any]) -> None:
        for name in ("opened", "closed", "closed_by_cleanup", "left_open", "open", "reused"):
            setattr(self, name, getattr(self, name) + int(part.get(name, 0)))
        self.left_open_reasons.update(part.get("left_open_reasons", {}))
        cleanup = part.get("cleanup", {})
        self.cleanups += cleanup.get("conversations", 0)
        self.cleanup_attempts += cleanup.get("attempts", 0)
        self.cleanup_calls.update(cleanup.get("calls", {}))
        self.cleanup_failures.update(cleanup.get("failures", {}))
        self.not_found += cleanup.get("not_found", 0)
        self.unconfirmed += cleanup.get("unconfirmed", 0)


@dataclass
class BackoffCounts:
    """Pauses the retry policy and the circuit breaker imposed (docs/reports.md, "Backoff")."""

    pauses: int = 0  # pauses after a failed session
    pause_s: float = 0.0  # their total length, as asked
    throttled: int = 0  # of which a 429 (its Retry-After, at least 1 s)
    breaker_trips: int = 0  # a host presumed down: users paused
    breaker_recoveries: int = 0  # ... and back
    breaker_waits: int = 0  # attempts held back by an open breaker
    breaker_wait_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pauses": self.pauses,
            "pause_s": round(self.pause_s, 3),
            "throttled": self.throttled,
            "breaker_trips": self.breaker_trips,
            "breaker_recoveries": self.breaker_recoveries,
            "breaker_waits": self.breaker_waits,
            "breaker_wait_s": round(self.breaker_wait_s, 3),
        }

    def add(self, part: dict[str, Any]) -> None:
        for name, value in part.items():
            if hasattr(self, name):
                setattr(self, name, getattr(self, name) + value)


@dataclass
class ReconnectCounts:
    """Sockets lost mid-hold and what the reconnect policy made of them (docs/reports.md, "Reconnects")."""

    drops: int = 0  # sockets that ended mid-hold while --lp-on-drop reconnect was on
    reconnects: int = 0  # tries (each a new connection)
    recovered: int = 0  # drops after which the consumer was back on its conversation (the same id, open)
    lost: int = 0  # drops no try recovered: the session failed
    interrupted: int = 0  # drops whose reconnect the end of the run cut short
    refreshes: int = 0  # LP tokens renewed before they expired mid-hold (a move to a new socket)
    calls: Counter[str] = field(default_factory=Counter)  # ledger target -> calls the reconnects made
    failures: Counter[str] = field(default_factory=Counter)  # category -> failed tries

    def to_dict(self) -> dict[str, Any]:
        return {
            "drops": self.drops,
            "reconnects": self.reconnects,
            "recovered": self.recovered,
            "lost": self.lost,
            "interrupted": self.interrupted,
            "refreshes": self.refreshes,
            "calls": dict(sorted(self.calls.items())),
            "failures": dict(self.failures.most_common()),
        }

    def add(self, part: dict[str, Any]) -> None:
        for name in ("drops", "reconnects", "recovered", "lost", "interrupted", "refreshes"):
            setattr(self, name, getattr(self, name) + int(part.get(name, 0)))
        self.calls.update(part.get("calls", {}))
        self.failures.update(part.get("failures", {}))


@dataclass
class MessageCounts:
    """The conversation traffic of the sessions that talk (docs/reports.md, "Messages")."""

    sent: int = 0  # ContentEvents published and answered with a sequence
    received: int = 0  # the agent's ContentEvents (each once, replays not counted again)
    replied: int = 0  # of the sent: answered by an agent message
    lost: int = 0  # of the sent: no reply within --lp-reply-timeout, or the socket went down before one
    receipts_sent: Counter[str] = field(default_factory=Counter)  # ACCEPT / READ -> AcceptStatusEvents published
    receipts_received: Counter[str] = field(default_factory=Counter)  # the agent's, by status
    typing_sent: int = 0  # ChatStateEvents published
    typing_received: int = 0  # the agent's ChatStateEvents

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "replied": self.replied,
            "lost": self.lost,
            "receipts_sent": dict(sorted(self.receipts_sent.items())),
            "receipts_received": dict(sorted(self.receipts_received.items())),
            "typing_sent": self.typing_sent,
            "typing_received": self.typing_received,
        }

    def add(self, part: dict[str, Any]) -> None:
        for name in ("sent", "received", "replied", "lost", "typing_sent", "typing_received"):
            setattr(self, name, getattr(self, name) + int(part.get(name, 0)))
        self.receipts_sent.update(part.get("receipts_sent", {}))
        self.receipts_received.update(part.get("receipts_received", {}))


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
    conversations: ConversationCounts = field(default_factory=ConversationCounts)
    backoff: BackoffCounts = field(default_factory=BackoffCounts)
    reconnect: ReconnectCounts = field(default_factory=ReconnectCounts)
    messages: MessageCounts = field(default_factory=MessageCounts)
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
        fresh.conversations.open = self.conversations.open  # conversations held now are still held
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
            "conversations": self.conversations.to_dict(),
            "backoff": self.backoff.to_dict(),
            "reconnect": self.reconnect.to_dict(),
            "messages": self.messages.to_dict(),
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
            total.conversations.add(part.get("conversations") or {})  # a worker of an older version has none
            total.backoff.add(part.get("backoff") or {})
            total.reconnect.add(part.get("reconnect") or {})
            total.messages.add(part.get("messages") or {})
        return total.to_dict()
