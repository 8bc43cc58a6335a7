"""The consumer's side of one socket as a state machine: requests out, text frames in, events out.

What a frame *means* for the requests waiting on it is decided here, once, so any I/O layer (the
gevent client, a test driving frames by hand) gets the same answers: a response settles the
request it names; a response nobody waits for any more is late; a frame that is not an envelope
fails the request it names, or the one request waiting when it names none; a request from the
server is a protocol error. Waiters are opaque (a gevent ``AsyncResult``, a future, None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.protocol.correlation import Correlator, PendingRequest
from harness.protocol.envelope import Notification, ProtocolError, Response, parse, salvage_id

W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class Answered(Generic[W]):
    """A response for a request still waiting: hand ``response`` to ``entry.waiter``."""

    entry: PendingRequest[W]
    response: Response


@dataclass(frozen=True, slots=True)
class Late:
    """A response whose request had already given up (or was never sent on this socket)."""

    response: Response


@dataclass(frozen=True, slots=True)
class Notified:
    notification: Notification


@dataclass(frozen=True, slots=True)
class Broken(Generic[W]):
    """A frame that is not a valid envelope; ``failed`` is the request it fails, if any."""

    error: ProtocolError
    failed: PendingRequest[W] | None


Event = Answered[Any] | Late | Notified | Broken[Any]


class ConsumerConnection(Generic[W]):
    """Outstanding requests of one consumer socket and what each incoming frame does to them."""

    __slots__ = ("requests",)

    def __init__(self) -> None:
        self.requests: Correlator[W] = Correlator()

    def request(
        self, type_: str, body: Any, waiter: W, now: float = 0.0, headers: Any = None
    ) -> tuple[PendingRequest[W], str]:
        """Register a request; returns its pending entry and the text frame to send."""
        return self.requests.start(type_, body, waiter, now, headers)

    def receive_text(self, data: str | bytes | bytearray) -> Event:
        """The event one incoming text frame amounts to (pending requests are updated)."""
        try:
            envelope = parse(data)
        except ProtocolError as exc:
            return Broken(exc, self._blamed(data))
        if isinstance(envelope, Response):
            try:
                return Answered(self.requests.resolve(envelope), envelope)
            except ProtocolError:
                return Late(envelope)
        if isinstance(envelope, Notification):
            return Notified(envelope)
        error = ProtocolError("unexpected request", envelope.type)
        return Broken(error, self._blamed(data))

    def _blamed(self, data: str | bytes | bytearray) -> PendingRequest[W] | None:
        """The waiting request a broken frame fails now instead of leaving it to time out.

        The request the frame names by ``reqId``; a frame that names none is pinned on the one
        request waiting, if only one is (a session waits for one answer at a time) and the frame
        is not a notification. Otherwise the requests run into their own timeouts.
        """
        req_id = salvage_id(data, "reqId")
        if req_id is None:
            waiting = [e for e in self.requests.pending.values() if e.waiter is not None]
            if len(waiting) != 1 or _looks_like_notification(data):
                return None
            req_id = waiting[0].req_id
        entry = self.requests.cancel(req_id)
        return entry if entry is not None and entry.waiter is not None else None


def _looks_like_notification(data: str | bytes | bytearray) -> bool:
    return (b'"notification"' if isinstance(data, (bytes, bytearray)) else '"notification"') in data
