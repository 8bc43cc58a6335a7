"""Request ids and matching responses to the requests that wait for them.

The client allocates ids, remembers what each request was, and hands every response to the
waiter of its ``reqId``. The waiter itself (a gevent ``AsyncResult``, an asyncio future, a
test's list) is opaque here, so the same bookkeeping serves any I/O layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from harness.protocol.envelope import ProtocolError, Response, encode_request

W = TypeVar("W")


class RequestIds:
    """Ids unique per socket: "1", "2", ... (the tutorial's first request uses id 1)."""

    __slots__ = ("_counter",)

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)

    def next(self) -> str:
        return str(next(self._counter))


@dataclass(slots=True)
class PendingRequest(Generic[W]):
    req_id: str
    type: str
    waiter: W
    sent_at: float = 0.0


@dataclass(slots=True)  # one per held socket: no per-instance dict
class Correlator(Generic[W]):
    """Outstanding requests of one socket, keyed by request id."""

    ids: RequestIds = field(default_factory=RequestIds)
    pending: dict[str, PendingRequest[W]] = field(default_factory=dict)

    def start(
        self, type_: str, body: object, waiter: W, sent_at: float = 0.0, headers: object = None
    ) -> tuple[PendingRequest[W], str]:
        """Register a new request; returns its pending entry and the frame to send (``headers``: InitConnection's)."""
        req_id = self.ids.next()
        entry = PendingRequest(req_id, type_, waiter, sent_at)
        self.pending[req_id] = entry
        return entry, encode_request(req_id, type_, body, headers)

    def resolve(self, response: Response) -> PendingRequest[W]:
        """The entry this response answers, removed from the pending set."""
        try:
            return self.pending.pop(response.req_id)
        except KeyError:
            raise ProtocolError(
                "unexpected response", f"reqId {response.req_id!r} matches no pending request"
            ) from None

    def cancel(self, req_id: str) -> PendingRequest[W] | None:
        """Forget a request (its waiter gave up); a late response then counts as unexpected."""
        return self.pending.pop(req_id, None)

    def drain(self) -> list[PendingRequest[W]]:
        """All outstanding requests, removed: the socket is gone and each waiter must be failed."""
        entries = list(self.pending.values())
        self.pending.clear()
        return entries
