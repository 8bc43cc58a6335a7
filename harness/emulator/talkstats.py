"""The ledger's ``messages`` and ``agents`` sections: the conversation traffic, and the agent side's queue.

``messages`` counts what was published into conversations, by who published it (the consumer, or
the brand's side); ``agents`` the agents configured and busy, the conversations waiting for one
(now, peak, how long they waited), and the replies (due, sent, declined by the reply probability,
cancelled by a close) with their server-side timings. Both are plain counters and timing blocks
(:meth:`~harness.emulator.ledger.Histogram.timing_json`), summed across ``--processes`` workers
by :func:`~harness.emulator.ledger.merge_sections`. Shapes: docs/emulator.md ("Ledger").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.emulator.ledger import Histogram
from harness.protocol.events import CONTENT_EVENTS, EventType, Role

CONSUMER = "consumer"
AGENT = "agent"


class _Counts:
    __slots__ = ("content", "receipts", "typing", "other")

    def __init__(self) -> None:
        self.content = 0
        self.receipts: dict[str, int] = {}
        self.typing = 0
        self.other = 0

    def to_json(self) -> dict[str, Any]:
        return {"content": self.content, "receipts": dict(self.receipts), "typing": self.typing, "other": self.other}


class MessageStats:
    """Events published into conversations: content, receipts by status, chat states, by side."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sides = {CONSUMER: _Counts(), AGENT: _Counts()}

    def published(self, role: str, event: Mapping[str, Any]) -> None:
        counts = self.sides[CONSUMER if role == Role.CONSUMER else AGENT]
        kind = event.get("type")
        if kind in CONTENT_EVENTS:
            counts.content += 1
        elif kind == EventType.ACCEPT_STATUS:
            status = str(event.get("status"))[:16]
            counts.receipts[status] = counts.receipts.get(status, 0) + 1
        elif kind == EventType.CHAT_STATE:
            counts.typing += 1
        else:
            counts.other += 1

    def snapshot(self) -> dict[str, Any]:
        return {side: counts.to_json() for side, counts in self.sides.items()}


Gauges = Callable[[], dict[str, Any]]  # the desk's state now: agents, slots, busy, queued, per skill


class AgentStats:
    """The agent side's counters; what it holds now (agents, busy, queued) comes from ``gauges``."""

    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges
        self.reset()

    def reset(self) -> None:
        """Zero the counters; the queue's peak starts again from its length now."""
        self.assigned = 0  # conversations an agent joined
        self.released = 0  # ... and left, at the close
        self.unrouted = 0  # conversations opened with no agent for their skill: nobody answers them
        self.queue_entered = 0
        self.queue_left = 0  # an agent took them
        self.queue_abandoned = 0  # closed while waiting
        self.queue_dropped = 0  # their skill lost all its agents while they waited (PUT /admin/agents)
        self.queue_peak = int(self.gauges().get("queued", 0))
        self.wait = Histogram()  # time in the queue of each conversation an agent took (0 when one was free)
        self.replies_due = 0  # consumer messages an agent will answer
        self.replies_sent = 0
        self.replies_declined = 0  # not answered: the reply probability's draw
        self.replies_cancelled = 0  # due, but the conversation closed first
        self.reply_latency = Histogram()  # the consumer's message read -> the agent's reply sent (server side)
        self.reply_delay = Histogram()  # the delay drawn from --agent-reply-delay for it

    def queued(self, length: int) -> None:
        self.queue_entered += 1
        if length > self.queue_peak:
            self.queue_peak = length

    def snapshot(self) -> dict[str, Any]:
        now = self.gauges()
        queued = int(now.get("queued", 0))
        return {
            "agents": now.get("agents", 0),
            "slots": now.get("slots", 0),
            "busy": now.get("busy", 0),
            "assigned": self.assigned,
            "released": self.released,
            "unrouted": self.unrouted,
            "queue": {
                "now": queued,
                "peak": max(self.queue_peak, queued),
                "entered": self.queue_entered,
                "left": self.queue_left,
                "abandoned": self.queue_abandoned,
                "dropped": self.queue_dropped,
                "wait_ms": self.wait.timing_json(),
            },
            "replies": {
                "due": self.replies_due,
                "sent": self.replies_sent,
                "declined": self.replies_declined,
                "cancelled": self.replies_cancelled,
                "latency_ms": self.reply_latency.timing_json(),
                "delay_ms": self.reply_delay.timing_json(),
            },
            "skills": now.get("skills", {}),
        }
