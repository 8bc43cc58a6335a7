"""Consumers, conversations and what each request on a consumer socket does.

No aiohttp here: a :class:`Session` (one socket) takes a parsed request and returns a
:class:`Reply` (the response frame and any notifications, possibly for other sockets of the
same consumer). The WebSocket layer only moves the text. Choices made where the docs are
silent are listed in docs/emulator.md ("Messaging socket").
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harness.emulator.ledger import Ledger
from harness.protocol import messages
from harness.protocol.envelope import ProtocolError, Request, encode_notification, encode_response, parse_request
from harness.protocol.messages import Code, MessageType

MAX_STRING_BODY = 128  # infra/stringRespBody.json
MAX_EVENTS_KEPT = 100  # per conversation, for SubscribeMessagingEvents replays
STRING_RESP = MessageType.STRING_RESPONSE
KNOWN_TYPES = MessageType.CONSUMER_REQUESTS
MALFORMED = "malformed"
UNKNOWN = "unknown"
NO_REQ_ID = "0"  # the reqId of an error answer to a frame with no usable id (infra/resp.json's default)


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


@dataclass(slots=True)
class Consumer:
    """One consumer (the LP token's ``sub``) with its sockets and conversations."""

    id: str
    anonymous: bool
    sessions: set[Session] = field(default_factory=set)
    open_conversation: Conversation | None = None
    conversations: dict[str, Conversation] = field(default_factory=dict)


@dataclass(slots=True)
class Reply:
    """What the socket layer sends: the response (None: no answer) and notifications."""

    code: int
    frame: str | None
    notifications: list[tuple[Session, str]] = field(default_factory=list)


class Registry:
    """Consumers with an open socket or an open conversation (others are forgotten: bounded memory)."""

    def __init__(self, ledger: Ledger, max_closed_kept: int = 20) -> None:
        self.ledger = ledger
        self.consumers: dict[str, Consumer] = {}
        self.max_closed_kept = max_closed_kept

    def attach(self, session: Session, consumer_id: str, anonymous: bool) -> Consumer:
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            consumer = self.consumers[consumer_id] = Consumer(consumer_id, anonymous)
        consumer.sessions.add(session)
        return consumer

    def detach(self, session: Session) -> None:
        consumer = session.consumer
        if consumer is None:
            return
        consumer.sessions.discard(session)
        if not consumer.sessions and consumer.open_conversation is None:
            self.consumers.pop(consumer.id, None)

    def reset(self) -> None:
        """Forget every conversation (admin reset keeps sockets but not their state)."""
        for consumer in self.consumers.values():
            consumer.open_conversation = None
            consumer.conversations.clear()
        self.consumers = {cid: c for cid, c in self.consumers.items() if c.sessions}


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


class Session:
    """One consumer socket: its identity, subscriptions, and the request handlers."""

    __slots__ = ("registry", "consumer", "account", "ex_subscriptions", "event_subscriptions", "__weakref__")

    def __init__(self, registry: Registry, account: str) -> None:
        self.registry = registry
        self.account = account
        self.consumer: Consumer | None = None
        self.ex_subscriptions: dict[str, set[str]] = {}  # subscriptionId -> states
        self.event_subscriptions: set[str] = set()  # dialogIds

    def authenticate(self, consumer_id: str, anonymous: bool) -> None:
        self.consumer = self.registry.attach(self, consumer_id, anonymous)

    def close(self) -> None:
        self.registry.detach(self)

    # ------------------------------------------------------------------ dispatch
    def handle(self, req: Request) -> Reply:
        if self.consumer is None:
            return error_reply(req.id, Code.UNAUTHORIZED, "not authenticated: send InitConnection first")
        handler = _HANDLERS.get(req.type)
        if handler is None:
            return error_reply(req.id, Code.BAD_REQUEST, f"unknown request type {req.type[:80]}")
        return handler(self, req)

    # ------------------------------------------------------------------ handlers
    def request_conversation(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        if req.body is not None and not isinstance(req.body, dict):
            return error_reply(req.id, Code.BAD_REQUEST, "body must be an object")
        current = consumer.open_conversation
        if current is not None:
            return error_reply(req.id, Code.BAD_REQUEST, f"consumer already has an open conversation {current.id}")
        ts = now_ms()
        conv = Conversation(str(uuid.uuid4()), consumer.id, ts, last_update=ts)
        consumer.open_conversation = conv
        consumer.conversations[conv.id] = conv
        self._trim_closed(consumer)
        ledger = self.registry.ledger
        ledger.conversations_opened += 1
        ledger.conversations_open += 1
        frame = encode_response(req.id, MessageType.REQUEST_CONVERSATION_RESPONSE, Code.OK, {"conversationId": conv.id})
        return Reply(Code.OK, frame, self._conversation_change(conv))

    def update_conversation_field(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        body = req.body
        conv_id = body.get("conversationId") if isinstance(body, dict) else None
        if not isinstance(conv_id, str) or not isinstance(body.get("conversationField"), (list, dict)):
            return error_reply(req.id, Code.BAD_REQUEST, "body needs conversationId and conversationField")
        conv = consumer.conversations.get(conv_id)
        if conv is None:
            return error_reply(req.id, Code.NOT_FOUND, f"unknown conversation {conv_id[:64]}")
        if messages.closed_conversation_id(body) is None:
            # CSAT, TTR and other field updates: accepted, nothing to emulate.
            return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))
        if conv.state != messages.STATE_OPEN:
            return error_reply(req.id, Code.BAD_REQUEST, f"conversation {conv_id[:64]} is already closed")
        conv.state = messages.STATE_CLOSE
        conv.end_ts = conv.last_update = now_ms()
        if consumer.open_conversation is conv:
            consumer.open_conversation = None
        ledger = self.registry.ledger
        ledger.conversations_closed += 1
        ledger.conversations_open -= 1
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"), self._conversation_change(conv))

    def get_clock(self, req: Request) -> Reply:
        body = {"currentTime": now_ms()}
        return Reply(Code.OK, encode_response(req.id, MessageType.GET_CLOCK_RESPONSE, Code.OK, body))

    def keep_alive(self, req: Request) -> Reply:
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    def init_connection(self, req: Request) -> Reply:
        # Reached only when the socket is already authenticated (the server handles the header-less case).
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    def publish_event(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            return error_reply(req.id, Code.BAD_REQUEST, "body needs dialogId and event")
        dialog_id = body.get("dialogId") or body.get("conversationId")
        event = body["event"]
        if not isinstance(dialog_id, str) or not isinstance(event.get("type"), str):
            return error_reply(req.id, Code.BAD_REQUEST, "body needs dialogId and event.type")
        conv = consumer.conversations.get(dialog_id)
        if conv is None:
            return error_reply(req.id, Code.NOT_FOUND, f"unknown dialog {dialog_id[:64]}")
        if conv.state != messages.STATE_OPEN:
            return error_reply(req.id, Code.BAD_REQUEST, f"conversation {dialog_id[:64]} is closed")
        conv.sequence += 1
        change = {
            "sequence": conv.sequence,
            "originatorId": consumer.id,
            "serverTimestamp": now_ms(),
            "event": event,
            "dialogId": dialog_id,
        }
        conv.events.append(change)
        frame = encode_response(req.id, MessageType.PUBLISH_EVENT_RESPONSE, Code.OK, {"sequence": conv.sequence})
        notification = encode_notification(MessageType.MESSAGING_EVENT_NOTIFICATION, {"changes": [change]})
        targets = [(s, notification) for s in consumer.sessions if dialog_id in s.event_subscriptions]
        return Reply(Code.OK, frame, targets)

    def subscribe_messaging_events(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        body = req.body
        dialog_id = body.get("dialogId") if isinstance(body, dict) else None
        if not isinstance(dialog_id, str):
            return error_reply(req.id, Code.BAD_REQUEST, "body needs dialogId")
        conv = consumer.conversations.get(dialog_id)
        if conv is None:
            return error_reply(req.id, Code.NOT_FOUND, f"unknown dialog {dialog_id[:64]}")
        from_seq = body.get("fromSeq", 0)
        if isinstance(from_seq, bool) or not isinstance(from_seq, int):
            from_seq = 0
        self.event_subscriptions.add(dialog_id)
        frame = encode_response(req.id, MessageType.GENERIC_SUBSCRIBE_RESPONSE, Code.OK, {})
        existing = [e for e in conv.events if e["sequence"] >= from_seq]
        notes = []
        if existing:
            notes.append((self, encode_notification(MessageType.MESSAGING_EVENT_NOTIFICATION, {"changes": existing})))
        return Reply(Code.OK, frame, notes)

    def subscribe_ex_conversations(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        body = req.body if isinstance(req.body, dict) else {}
        states = body.get("convState") or [messages.STATE_OPEN, messages.STATE_CLOSE]
        if isinstance(states, str):
            states = [states]
        if not isinstance(states, list):
            return error_reply(req.id, Code.BAD_REQUEST, "convState must be a list")
        sub_id = str(uuid.uuid4())
        wanted = {s for s in states if isinstance(s, str)}
        self.ex_subscriptions[sub_id] = wanted
        frame = encode_response(
            req.id, MessageType.SUBSCRIBE_EX_CONVERSATIONS_RESPONSE, Code.OK, {"subscriptionId": sub_id}
        )
        existing = [_upsert(c) for c in consumer.conversations.values() if c.state in wanted]
        notes = []
        if existing:
            body_out = {"subscriptionId": sub_id, "changes": existing}
            notes.append((self, encode_notification(MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, body_out)))
        return Reply(Code.OK, frame, notes)

    def unsubscribe_ex_conversations(self, req: Request) -> Reply:
        body = req.body
        sub_id = body.get("subscriptionId") if isinstance(body, dict) else None
        if not isinstance(sub_id, str) or sub_id not in self.ex_subscriptions:
            return error_reply(req.id, Code.NOT_FOUND, "unknown subscriptionId")
        del self.ex_subscriptions[sub_id]
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    # ------------------------------------------------------------------ helpers
    def _conversation_change(self, conv: Conversation) -> list[tuple[Session, str]]:
        consumer = self.consumer
        assert consumer is not None
        out: list[tuple[Session, str]] = []
        change = None
        for session in consumer.sessions:
            for sub_id, states in session.ex_subscriptions.items():
                if conv.state in states:
                    change = change or _upsert(conv)
                    body = {"subscriptionId": sub_id, "changes": [change]}
                    out.append((session, encode_notification(MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, body)))
        return out

    def _trim_closed(self, consumer: Consumer) -> None:
        if len(consumer.conversations) > self.registry.max_closed_kept:
            for cid in [c.id for c in consumer.conversations.values() if c.state != messages.STATE_OPEN][
                : len(consumer.conversations) - self.registry.max_closed_kept
            ]:
                del consumer.conversations[cid]


def _upsert(conv: Conversation) -> dict[str, Any]:
    details: dict[str, Any] = {
        # The schema's form and the tutorial's form, both (clients ignore what they do not read).
        "participants": [{"id": conv.consumer_id, "role": "CONSUMER"}],
        "participantsPId": {"CONSUMER": [conv.consumer_id]},
        "state": conv.state,
        "startTs": conv.start_ts,
        "metaDataLastUpdateTs": conv.last_update,
        "ttr": {"ttrType": "NORMAL", "value": 3600},
    }
    if conv.end_ts is not None:
        details["endTs"] = conv.end_ts
    return {
        "type": "UPSERT",
        "result": {"convId": conv.id, "lastUpdateTime": conv.last_update, "conversationDetails": details},
    }


_HANDLERS = {
    MessageType.REQUEST_CONVERSATION: Session.request_conversation,
    MessageType.UPDATE_CONVERSATION_FIELD: Session.update_conversation_field,
    MessageType.GET_CLOCK: Session.get_clock,
    MessageType.KEEP_ALIVE: Session.keep_alive,
    MessageType.INIT_CONNECTION: Session.init_connection,
    MessageType.PUBLISH_EVENT: Session.publish_event,
    MessageType.SUBSCRIBE_MESSAGING_EVENTS: Session.subscribe_messaging_events,
    MessageType.SUBSCRIBE_EX_CONVERSATIONS: Session.subscribe_ex_conversations,
    MessageType.UNSUBSCRIBE_EX_CONVERSATIONS: Session.unsubscribe_ex_conversations,
}
