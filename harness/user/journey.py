"""A consumer session as LivePerson's own clients run it: how they connect, find their conversation, keep alive.

``--lp-auth init-connection`` connects the way browsers do: no ``Authorization`` header, the LP
token in an ``InitConnection`` request right after the upgrade (the ``connect`` step lasts until
its answer, so it stays comparable with the header flow). ``--lp-session realistic`` subscribes
to the consumer's OPEN conversations first (step ``subscribe-conversations``: until the
subscription's first notification, which clients wait for) and carries on an OPEN one it finds
instead of requesting another. ``--lp-keepalive getclock`` replaces WebSocket pings by a
``GetClock`` request every ``--lp-getclock-interval`` seconds (step ``get-clock``), LivePerson's
retry guidance for clients that cannot ping. The frames themselves are harness/protocol's.
"""

from __future__ import annotations

import time
from typing import Any, Final

import gevent.event

from harness.client.errors import Timeout, categorize
from harness.client.socket import ConsumerSocket
from harness.protocol import Notification
from harness.protocol.events import open_conversation_id, subscribe_conversations_body
from harness.protocol.messages import STATE_OPEN, MessageType, init_connection_headers
from harness.settings import Settings
from harness.user.steps import Step, StepReporter

SUBSCRIBE: Final = MessageType.SUBSCRIBE_EX_CONVERSATIONS


def open_socket(settings: Settings, token: str, **options: Any) -> ConsumerSocket:
    """A consumer socket for ``token`` as ``--lp-auth`` says: the header, or none and then InitConnection.

    ``options`` are :meth:`ConsumerSocket.connect`'s socket keywords. The header-less flow's
    InitConnection must be answered within the connect timeout; a refusal raises its
    ErrorResponse (the server closes that socket) and leaves nothing open.
    """
    header = settings.auth == "header"
    sock = ConsumerSocket.connect(
        settings.socket_url,
        token if header else None,
        timeout=settings.connect_timeout_s,
        verify_tls=settings.verify_tls,
        **options,
    )
    if not header:
        try:
            sock.request(
                MessageType.INIT_CONNECTION,
                timeout=settings.connect_timeout_s,
                headers=init_connection_headers(token),
            )
        except BaseException:
            sock.abort("InitConnection failed")
            raise
    return sock


class Inbox:
    """A session socket's notifications, kept for the user's greenlet: the reader's callback never blocks.

    ``wake`` is set by a notification, by the socket's end (``poke`` as its ``on_close``) and by
    the run's stop, so the hold waits on one event for all three.
    """

    __slots__ = ("notes", "wake")

    def __init__(self) -> None:
        self.notes: list[tuple[float, Notification]] = []  # (perf_counter at arrival, notification)
        self.wake = gevent.event.Event()

    def put(self, note: Notification) -> None:
        self.notes.append((time.perf_counter(), note))
        self.wake.set()

    def poke(self, *_: object) -> None:
        self.wake.set()

    def take(self) -> list[tuple[float, Notification]]:
        """Everything that arrived since the last call, oldest first."""
        notes, self.notes = self.notes, []
        self.wake.clear()
        return notes


def find_open_conversation(settings: Settings, steps: StepReporter, sock: ConsumerSocket, inbox: Inbox) -> str | None:
    """The consumer's OPEN conversation, if it has one: ``cqm.SubscribeExConversations`` and its first push.

    Timed as the ``subscribe-conversations`` step, until that first notification (a server that
    never sends it fails the step with ``timeout`` after ``--lp-request-timeout``).
    """
    timeout = settings.request_timeout_s
    with steps.measure(Step.SUBSCRIBE_CONVERSATIONS, categorize):
        answer = sock.request(SUBSCRIBE, subscribe_conversations_body([STATE_OPEN]), timeout=timeout)
        sub_id = answer.body.get("subscriptionId") if isinstance(answer.body, dict) else None
        deadline = time.perf_counter() + timeout
        while True:
            for _, note in inbox.take():
                body = note.body if isinstance(note.body, dict) else {}
                if note.type == MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION and body.get("subscriptionId") in (
                    sub_id,
                    None,
                ):
                    return open_conversation_id(body)
            left = deadline - time.perf_counter()
            if not sock.open:
                raise sock.close_info.error() if sock.close_info else Timeout("socket closed")
            if left <= 0:
                raise Timeout(f"no ExConversationChangeNotification in {timeout} s after the subscription")
            inbox.wake.wait(left)


class ClockKeepalive:
    """``GetClock`` every ``--lp-getclock-interval`` seconds, each timed as ``get-clock`` (answer within the pong timeout)."""

    __slots__ = ("steps", "interval", "timeout", "next_due")

    def __init__(self, settings: Settings, steps: StepReporter) -> None:
        self.steps = steps
        self.interval = settings.getclock_interval_s
        self.timeout = settings.pong_timeout_s
        self.next_due = 0.0

    def restart(self, now: float) -> None:
        """A new socket: its first GetClock one interval from now."""
        self.next_due = now + self.interval

    def run(self, sock: ConsumerSocket, now: float) -> float:
        """Send the GetClock that is due (StepFailed if it goes unanswered); returns when the next is due."""
        if now >= self.next_due:
            with self.steps.measure(Step.GET_CLOCK, categorize) as timed:
                sock.request(MessageType.GET_CLOCK, timeout=self.timeout)
                timed.elapsed_s = sock.last_answer_s
            self.next_due = time.perf_counter() + self.interval
        return self.next_due
