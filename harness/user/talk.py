"""A session that talks: messages published, the agent's replies awaited and acknowledged, typing shown.

With ``--lp-messages N`` a session subscribes to its conversation's events
(``ms.SubscribeMessagingEvents``, step ``subscribe-messages``) and publishes N ``ContentEvent``\\ s,
``--lp-message-interval`` apart (fixed or drawn from a distribution), each ``--lp-message-size``
characters, optionally after a ``ChatStateEvent`` COMPOSING (``--lp-typing``). It does not wait
for a reply before the next message: replies are matched to the oldest unanswered message, as
an agent answers in order. Every agent message is acknowledged with ``AcceptStatusEvent`` ACCEPT
then READ. Steps: ``publish`` (request to response), ``message-round-trip`` (publish to the
agent's reply notification), ``first-agent-reply`` (the conversation id to the agent's first
message). A message not answered within ``--lp-reply-timeout`` fails the session with
``no reply``. The hold lasts ``--lp-hold`` or until the talk is over, whichever is later.

A reconnect (``--lp-on-drop reconnect``) carries the talk on the new socket: it subscribes again
from the next sequence, so replies sent while it was away arrive as a replay. Receipts and typing
states are sent without waiting for their answers (the counts say how many), so a slow answer
never holds the talk up.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import gevent.event

from harness.client.errors import categorize
from harness.client.socket import ConsumerSocket
from harness.protocol import Notification, tokens
from harness.protocol import events as ev
from harness.protocol.events import AcceptStatus, ChatState, EventType
from harness.protocol.messages import MessageType
from harness.settings import Settings
from harness.user.journey import ClockKeepalive, Inbox
from harness.user.metrics import MessageCounts
from harness.user.steps import Step, StepFailed, StepReporter

NO_REPLY: Final = "no reply"
PUBLISH: Final = MessageType.PUBLISH_EVENT


@dataclass(slots=True)
class _Sent:
    """A message published and not answered yet."""

    at: float  # perf_counter when its publish was written
    start_time: float  # wall clock, for the round trip's entry


def message_text(number: int, size: int) -> str:
    """The text of message ``number``: ``size`` characters that say which message it is."""
    return f"message {number} from the load test ".ljust(size, ".")[:size]


class Talk:
    """One session's messages on whichever socket holds its conversation (a reconnect swaps it)."""

    def __init__(
        self,
        settings: Settings,
        steps: StepReporter,
        counts: Callable[[], MessageCounts],
        consumer_id: str | None,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.steps = steps
        self.counts = counts  # called each time: a stats reset replaces the counters
        self.consumer_id = consumer_id
        self.rng = rng
        self.left = settings.messages  # messages still to publish
        self.number = 0
        self.pending: deque[_Sent] = deque()
        self.next_publish = 0.0
        self.conversation_id: str | None = None
        self.opened_at: tuple[float, float] | None = None  # (perf, wall) when the id was known; None once replied
        self.next_seq = 0  # fromSeq of the next subscription: after the last event seen

    @property
    def done(self) -> bool:
        return self.left == 0 and not self.pending

    def subscribe(self, sock: ConsumerSocket, conversation_id: str, known_at: tuple[float, float] | None) -> None:
        """Follow the conversation's events on ``sock``; ``known_at`` (perf, wall) on the first socket only."""
        if known_at is not None:
            self.conversation_id, self.opened_at = conversation_id, known_at
            self.next_publish = known_at[0]  # the first message at once, the next ones an interval apart
        with self.steps.measure(Step.SUBSCRIBE_MESSAGES, categorize) as timed:
            sock.request(
                MessageType.SUBSCRIBE_MESSAGING_EVENTS,
                ev.subscribe_messaging_body(conversation_id, self.next_seq),
                timeout=self.settings.request_timeout_s,
            )
            timed.elapsed_s = sock.last_answer_s

    def run(self, sock: ConsumerSocket, notes: list[tuple[float, Notification]]) -> float | None:
        """Read what arrived, publish what is due; returns when to look again (None: nothing to do)."""
        for arrived, note in notes:
            if note.type == MessageType.MESSAGING_EVENT_NOTIFICATION:
                for change in ev.messaging_changes(note.body):
                    self._received(sock, change, arrived)
        now = time.perf_counter()
        self._check_replies(now)
        if self.left and now >= self.next_publish:
            self._publish(sock)
            now = time.perf_counter()
        due = [self.pending[0].at + self.settings.reply_timeout_s] if self.pending else []
        if self.left:
            due.append(self.next_publish)
        return min(due) if due else None

    def abandon(self) -> None:
        """The session ends with messages unanswered (not by the run's stop): they are lost."""
        self.counts().lost += len(self.pending)
        self.pending.clear()

    # ------------------------------------------------------------------ inbound
    def _received(self, sock: ConsumerSocket, change: ev.MessagingChange, arrived: float) -> None:
        if change.dialog_id != self.conversation_id:
            return
        if change.sequence is not None:
            if change.sequence < self.next_seq:
                return  # a replay of what this session has seen already
            self.next_seq = change.sequence + 1
        if not change.from_agent(self.consumer_id):
            return  # our own events, echoed to the conversation's subscribers
        counts = self.counts()
        if change.event_type == EventType.ACCEPT_STATUS:
            counts.receipts_received[change.status or "?"] += 1
        elif change.event_type == EventType.CHAT_STATE:
            counts.typing_received += 1
        elif change.is_content:
            counts.received += 1
            self._replied(arrived)
            if change.sequence is not None:
                for status in (AcceptStatus.ACCEPT, AcceptStatus.READ):
                    self._send(sock, ev.accept_status_event(status, [change.sequence]))
                    counts.receipts_sent[status] += 1

    def _replied(self, arrived: float) -> None:
        if self.opened_at is not None:
            opened, wall = self.opened_at
            self.opened_at = None
            self.steps.report(Step.FIRST_AGENT_REPLY, (arrived - opened) * 1000.0, start_time=wall)
        if self.pending:
            sent = self.pending.popleft()
            self.counts().replied += 1
            self.steps.report(Step.MESSAGE_ROUND_TRIP, (arrived - sent.at) * 1000.0, start_time=sent.start_time)

    def _check_replies(self, now: float) -> None:
        if not self.pending or now - self.pending[0].at < self.settings.reply_timeout_s:
            return
        oldest = self.pending[0]
        self.abandon()
        failure = StepFailed(Step.MESSAGE_ROUND_TRIP, NO_REPLY)
        self.steps.report(
            Step.MESSAGE_ROUND_TRIP, (now - oldest.at) * 1000.0, start_time=oldest.start_time, exception=failure
        )
        raise failure

    # ------------------------------------------------------------------ outbound
    def _publish(self, sock: ConsumerSocket) -> None:
        assert self.conversation_id is not None
        counts = self.counts()
        if self.settings.typing:
            self._send(sock, ev.chat_state_event(ChatState.COMPOSING))
            counts.typing_sent += 1
        self.number += 1
        self.left -= 1
        body = ev.publish_body(
            self.conversation_id, ev.content_event(message_text(self.number, self.settings.message_size))
        )
        sent = _Sent(time.perf_counter(), time.time())
        self.pending.append(sent)  # before the answer: a fast agent's reply may overtake it
        try:
            with self.steps.measure(Step.PUBLISH, categorize) as timed:
                sock.request(PUBLISH, body, timeout=self.settings.request_timeout_s)
                timed.elapsed_s = sock.last_answer_s
        except StepFailed:
            self.pending.remove(sent)
            counts.lost += 1  # it may or may not have reached the conversation: not answered here
            raise
        finally:
            self.next_publish = time.perf_counter() + self.settings.message_interval.sample_s(self.rng)
        counts.sent += 1

    def _send(self, sock: ConsumerSocket, event: dict[str, Any]) -> None:
        """A receipt or typing state: written now, its answer not awaited."""
        assert self.conversation_id is not None
        sock.send(PUBLISH, ev.publish_body(self.conversation_id, event))


class Activity:
    """What a held socket does besides holding: its inbox, the talk, the GetClock keepalive.

    ``run`` is called by the hold each time it wakes; it returns when to wake next.
    """

    def __init__(
        self,
        settings: Settings,
        steps: StepReporter,
        counts: Callable[[], MessageCounts],
        stopping: gevent.event.Event,
        lp_token: str,
    ) -> None:
        self.inbox = Inbox()
        self.stopping = stopping
        stopping.rawlink(self.inbox.poke)
        talks = settings.messages > 0 or settings.session == "realistic"
        self.talk = Talk(settings, steps, counts, _consumer_id(lp_token), random.Random()) if talks else None
        self.clock = ClockKeepalive(settings, steps) if settings.keepalive == "getclock" else None

    @property
    def wake(self) -> gevent.event.Event:
        return self.inbox.wake

    @property
    def done(self) -> bool:
        return self.talk is None or self.talk.done

    def attach(self, sock: ConsumerSocket, conversation_id: str, known_at: tuple[float, float] | None) -> None:
        """``sock`` now holds the conversation: read its notifications, follow its events, keep it alive.

        ``known_at`` (perf, wall): when the conversation id was known, on the session's first socket.
        """
        sock.on_notification = self.inbox.put  # (its on_close pokes the inbox too: the session's socket options)
        if self.talk is not None:
            self.talk.subscribe(sock, conversation_id, known_at)
        if self.clock is not None:
            self.clock.restart(time.perf_counter())

    def run(self, sock: ConsumerSocket) -> float | None:
        """One wake-up: notifications read, what is due sent; StepFailed ends the session."""
        notes = self.inbox.take()
        due: list[float] = []
        if self.talk is not None:
            talk_due = self.talk.run(sock, notes)
            if talk_due is not None:
                due.append(talk_due)
        if self.clock is not None:
            due.append(self.clock.run(sock, time.perf_counter()))
        return min(due) if due else None

    def abandon(self) -> None:
        if self.talk is not None:
            self.talk.abandon()

    def close(self) -> None:
        self.stopping.unlink(self.inbox.poke)


def _consumer_id(lp_token: str) -> str | None:
    """The consumer's id (the LP token's ``sub``): tells our own events from the agent's without metadata."""
    try:
        sub = tokens.unverified_claims(lp_token).get("sub")
    except tokens.TokenError:
        return None
    return sub if isinstance(sub, str) else None
