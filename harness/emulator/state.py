"""Consumers, conversations, and the notifications a change to either sends.

No aiohttp here: the :class:`Registry` keeps the consumers of one process and turns a change
(a conversation opened or closed, an agent joining, an event published) into the notification
frames each socket of the consumer gets; the request handlers (:mod:`.session`) and the agent
side (:mod:`.agents`) both go through it, so a frame has one shape whoever caused it. Choices
made where the docs are silent are listed in docs/emulator.md ("Messaging socket").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.emulator.ledger import Ledger
from harness.emulator.talkstats import MessageStats
from harness.protocol import events, messages
from harness.protocol.envelope import ProtocolError, Request, encode_notification, encode_response, parse_request
from harness.protocol.events import NO_SKILL
from harness.protocol.messages import MessageType

MAX_STRING_BODY = 128  # infra/stringRespBody.json
MAX_EVENTS_KEPT = 100  # per conversation, for SubscribeMessagingEvents replays
MAX_CLOSED_KEPT = 20  # closed conversations kept per consumer while it has a socket or an open one
STRING_RESP = MessageType.STRING_RESPONSE
KNOWN_TYPES = MessageType.CONSUMER_REQUESTS
MALFORMED = "malformed"
UNKNOWN = "unknown"
NO_REQ_ID = "0"  # the reqId of an error answer to a frame with no usable id (infra/resp.json's default)
# Seconds an agent has to answer, per ttrDefName (choice: the docs give none but the tutorial's
# PRIORITIZED 600); CUSTOM starts as NORMAL until a TTRField update gives its value.
TTR_SECONDS = {"NORMAL": 3600, "PRIORITIZED": 600, "URGENT": 300, "CUSTOM": 3600}
DEFAULT_TTR = "NORMAL"
NO_TTR = -1  # effectiveTTR when nothing is awaited from the brand



class Subscriber(Protocol):
    """One socket's session as the registry sees it: whose it is and what it subscribed to (session.py)."""

    consumer: Consumer | None
    ex_subscriptions: dict[str, set[str]]  # subscriptionId -> the conversation states it wants
    event_subscriptions: set[str]  # dialogIds whose messaging events it follows


Notes = list[tuple[Subscriber, str]]  # notification frames and the socket session each goes to


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Conversation:
    id: str
    consumer_id: str
    start_ts: int
    state: str = messages.STATE_OPEN
    end_ts: int | None = None
    sequence: int = -1
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS_KEPT))
    last_update: int = 0
    brand_id: str = ""
    skill_id: str = NO_SKILL
    ttr_type: str = DEFAULT_TTR
    ttr_value: int = TTR_SECONDS[DEFAULT_TTR]
    agent_id: str | None = None  # the ASSIGNED_AGENT, once one joined (kept after the close)
    awaiting_since: int | None = None  # ms: the consumer input the brand has not answered yet

    @property
    def effective_ttr(self) -> int:
        """When the brand must answer by (epoch ms), or -1 when nothing is awaited."""
        if self.state != messages.STATE_OPEN or self.awaiting_since is None:
            return NO_TTR
        return self.awaiting_since + self.ttr_value * 1000


@dataclass(slots=True)
class Consumer:
    """One consumer (the LP token's ``sub``) with its sockets and conversations."""

    id: str
    anonymous: bool
    sessions: set[Subscriber] = field(default_factory=set)
    open_conversation: Conversation | None = None
    conversations: dict[str, Conversation] = field(default_factory=dict)
    profile: dict[str, Any] | None = None  # userprofile.SetUserProfile's body, kept while the consumer is


@dataclass(slots=True)
class Reply:
    """What the socket layer sends: the response (None: no answer) and notifications."""

    code: int
    frame: str | None
    notifications: Notes = field(default_factory=list)


class AgentSide(Protocol):
    """What the brand's side does when a conversation opens, gets a consumer's event, or closes."""

    def opened(self, conv: Conversation) -> Notes: ...

    def published(self, conv: Conversation, change: Mapping[str, Any]) -> Notes: ...

    def closed(self, conv: Conversation) -> Notes: ...


def _no_delivery(notes: Notes) -> None:
    return None


class Registry:
    """Consumers with an open socket or an open conversation (others are forgotten: bounded memory)."""

    def __init__(self, ledger: Ledger, max_closed_kept: int = MAX_CLOSED_KEPT) -> None:
        self.ledger = ledger
        self.consumers: dict[str, Consumer] = {}
        self.max_closed_kept = max_closed_kept
        self.messages = MessageStats()
        ledger.add_section("messages", self.messages)
        self.agents: AgentSide | None = None  # set by the agent desk
        # how notifications made outside a request (an agent's reply) reach their sockets: the socket layer's
        self.deliver: Callable[[Notes], None] = _no_delivery

    def attach(self, session: Subscriber, consumer_id: str, anonymous: bool) -> Consumer:
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            consumer = self.consumers[consumer_id] = Consumer(consumer_id, anonymous)
        consumer.sessions.add(session)
        return consumer

    def detach(self, session: Subscriber) -> None:
        consumer = session.consumer
        if consumer is None:
            return
        consumer.sessions.discard(session)
        if not consumer.sessions and consumer.open_conversation is None:
            self.consumers.pop(consumer.id, None)

    def held(self) -> dict[str, int]:
        """What this registry keeps in memory: consumers, and their conversations (open and closed)."""
        return {
            "consumers": len(self.consumers),
            "conversations": sum(len(c.conversations) for c in self.consumers.values()),
        }

    # ------------------------------------------------------------------ conversations
    def open(self, consumer: Consumer, conv: Conversation) -> Notes:
        """``conv`` is the consumer's new OPEN conversation: its subscribers are told, an agent routed."""
        consumer.open_conversation = conv
        consumer.conversations[conv.id] = conv
        self._trim_closed(consumer)
        self.ledger.conversations_opened += 1
        self.ledger.conversations_open += 1
        notes = self.changed(conv, None)
        if self.agents is not None:
            notes += self.agents.opened(conv)
        return notes

    def close(self, conv: Conversation) -> Notes:
        """Close an OPEN conversation: subscribers are told (UPSERT or DELETE), its agent is freed."""
        conv.state = messages.STATE_CLOSE
        conv.end_ts = conv.last_update = now_ms()
        conv.awaiting_since = None
        consumer = self.consumers.get(conv.consumer_id)
        if consumer is not None and consumer.open_conversation is conv:
            consumer.open_conversation = None
        self.ledger.conversations_closed += 1
        self.ledger.conversations_open -= 1
        notes = self.changed(conv, messages.STATE_OPEN)
        if self.agents is not None:
            notes += self.agents.closed(conv)
        return notes

    def changed(self, conv: Conversation, was: str | None) -> Notes:
        """ExConversationChangeNotifications for a conversation whose state was ``was``: an UPSERT to each
        subscription whose filter has its state now, a DELETE to those that had it only before."""
        consumer = self.consumers.get(conv.consumer_id)
        if consumer is None:
            return []
        out: Notes = []
        made: dict[str, dict[str, Any]] = {}
        for session in consumer.sessions:
            for sub_id, states in session.ex_subscriptions.items():
                if conv.state in states:
                    kind = events.Change.UPSERT
                elif was is not None and was in states:
                    kind = events.Change.DELETE
                else:
                    continue
                change = made.get(kind) or made.setdefault(kind, conversation_change(conv, kind))
                body = events.ex_change_body(sub_id, [change])
                out.append((session, encode_notification(MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, body)))
        return out

    # ------------------------------------------------------------------ messaging events
    def emit(
        self, conv: Conversation, originator_id: str, role: str, published: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], Notes]:
        """Publish events into ``conv`` as ``originator_id`` (``role``): one notification to every socket
        of the consumer that follows its events. Content and receipts take the next sequence numbers and
        are kept for replays; chat states take none and are not kept. Returns (the changes, notes)."""
        ts = now_ms()
        changes = []
        for event in published:
            sequence = None
            if events.numbered(event):
                conv.sequence += 1
                sequence = conv.sequence
            change = events.messaging_change(
                sequence=sequence,
                originator_id=originator_id,
                role=role,
                event=event,
                dialog_id=conv.id,
                server_timestamp=ts,
                conversation_id=conv.id,
            )
            if sequence is not None:
                conv.events.append(change)
            changes.append(change)
            self.messages.published(role, event)
        consumer = self.consumers.get(conv.consumer_id)
        if consumer is None:
            return changes, []
        frame = encode_notification(MessageType.MESSAGING_EVENT_NOTIFICATION, events.messaging_notification_body(changes))
        return changes, [(s, frame) for s in consumer.sessions if conv.id in s.event_subscriptions]

    def _trim_closed(self, consumer: Consumer) -> None:
        if len(consumer.conversations) > self.max_closed_kept:
            for cid in [c.id for c in consumer.conversations.values() if c.state != messages.STATE_OPEN][
                : len(consumer.conversations) - self.max_closed_kept
            ]:
                del consumer.conversations[cid]


def conversation_change(conv: Conversation, kind: str = events.Change.UPSERT) -> dict[str, Any]:
    """One change of an ExConversationChangeNotification for ``conv``, with the details clients read."""
    agents = [conv.agent_id] if conv.agent_id is not None else []
    extra: dict[str, Any] = {
        "brandId": conv.brand_id,
        "stage": conv.state,  # one dialog: the container's stage is its MAIN dialog's state
        "skillId": conv.skill_id,
        "dialogs": [
            events.main_dialog(conv.id, conv.state, conv.start_ts, conv.consumer_id, agents, conv.end_ts)
        ],
    }
    details = events.conversation_details(
        consumer_id=conv.consumer_id,
        state=conv.state,
        start_ts=conv.start_ts,
        last_update=conv.last_update,
        end_ts=conv.end_ts,
        agent_ids=agents,
        ttr_type=conv.ttr_type,
        ttr_value=conv.ttr_value,
        extra=extra,
    )
    return events.conversation_change(kind, conv.id, conv.last_update, details, conv.effective_ttr)


def classify(text: str | bytes) -> tuple[str, Request | None, str]:
    """(ledger target, the request or None, error detail) for one incoming frame."""
    try:
        req = parse_request(text)
    except ProtocolError as exc:
        return MALFORMED, None, exc.reason
    if req.type in KNOWN_TYPES:
        return req.type, req, ""
    return UNKNOWN, req, ""


def string_response(req_id: str, code: int, text: str) -> str:
    return encode_response(req_id, STRING_RESP, code, text[:MAX_STRING_BODY])


def error_reply(req_id: str, code: int, text: str) -> Reply:
    return Reply(code, string_response(req_id, code, text))
