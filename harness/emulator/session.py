"""What each request on a consumer socket does: a :class:`Session` per socket, one handler per type.

No aiohttp here: a session takes a parsed request and returns a
:class:`~harness.emulator.state.Reply` (the response frame and any notifications, possibly for
other sockets of the same consumer); every change goes through the
:class:`~harness.emulator.state.Registry`, so the agent side sees it too. The WebSocket layer
only moves the text. Choices made where the docs are silent: docs/emulator.md ("Messaging socket").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from harness.emulator.state import (
    DEFAULT_TTR,
    TTR_SECONDS,
    Consumer,
    Conversation,
    Registry,
    Reply,
    conversation_change,
    error_reply,
    now_ms,
    string_response,
)
from harness.protocol import events, messages
from harness.protocol.envelope import Request, encode_notification, encode_response
from harness.protocol.messages import Code, MessageType

MAX_PROFILE_BYTES = 4096  # a SetUserProfile body kept per consumer (choice: bounded memory)
MAX_FIELD_CHARS = 64  # skillId, brandId: conversationId's limit (cm/consumerRequestConversationResp.json)
TTR_FIELD = "TTRField"
SKILL_FIELD = "Skill"
# The answer to a ChatStateEvent publish: no sequence is taken, and the PCS tutorial's example answers 0.
CHAT_STATE_SEQUENCE = 0


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

    # ------------------------------------------------------------------ conversations
    def request_conversation(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        body = req.body if req.body is not None else {}
        if not isinstance(body, dict):
            return error_reply(req.id, Code.BAD_REQUEST, "body must be an object")
        brand = body.get("brandId")
        if brand is not None and str(brand) != self.account:
            return error_reply(req.id, Code.BAD_REQUEST, f"brandId {str(brand)[:MAX_FIELD_CHARS]} is not this account")
        skill = body.get("skillId")
        ttr = body.get("ttrDefName")
        ttr = ttr if isinstance(ttr, str) and ttr in TTR_SECONDS else DEFAULT_TTR  # null or unknown: the default
        current = consumer.open_conversation
        if current is not None:
            return error_reply(req.id, Code.BAD_REQUEST, f"consumer already has an open conversation {current.id}")
        ts = now_ms()
        conv = Conversation(
            str(uuid.uuid4()),
            consumer.id,
            ts,
            last_update=ts,
            brand_id=self.account,
            skill_id=str(skill)[:MAX_FIELD_CHARS] if skill is not None and skill != "" else events.NO_SKILL,
            ttr_type=ttr,
            ttr_value=TTR_SECONDS[ttr],
            awaiting_since=ts,
        )
        notes = self.registry.open(consumer, conv)
        frame = encode_response(req.id, MessageType.REQUEST_CONVERSATION_RESPONSE, Code.OK, {"conversationId": conv.id})
        return Reply(Code.OK, frame, notes)

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
            return self._update_fields(req, conv, body["conversationField"])
        if conv.state != messages.STATE_OPEN:
            return error_reply(req.id, Code.BAD_REQUEST, f"conversation {conv_id[:64]} is already closed")
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"), self.registry.close(conv))

    def _update_fields(self, req: Request, conv: Conversation, fields: object) -> Reply:
        """TTR and skill updates change what the details say; CSAT and others are accepted, nothing emulated."""
        changed = False
        for item in fields if isinstance(fields, list) else [fields]:
            if not isinstance(item, dict):
                continue
            ttr_type = item.get("ttrType")
            if item.get("field") == TTR_FIELD and isinstance(ttr_type, str) and ttr_type in TTR_SECONDS:
                value = item.get("value")
                conv.ttr_type = ttr_type
                valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                conv.ttr_value = value if valid else TTR_SECONDS[conv.ttr_type]
                changed = True
            elif item.get("field") == SKILL_FIELD and isinstance(item.get("skill"), str):
                conv.skill_id = item["skill"][:MAX_FIELD_CHARS]
                changed = True
        notes = []
        if changed and conv.state == messages.STATE_OPEN:
            conv.last_update = now_ms()
            notes = self.registry.changed(conv, conv.state)
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"), notes)

    # ------------------------------------------------------------------ messaging events
    def publish_event(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        found = events.publish_event_of(req.body)
        if found is None:
            return error_reply(req.id, Code.BAD_REQUEST, "body needs dialogId and event with a type")
        dialog_id, event = found
        conv = consumer.conversations.get(dialog_id)
        if conv is None:
            return error_reply(req.id, Code.NOT_FOUND, f"unknown dialog {dialog_id[:64]}")
        if conv.state != messages.STATE_OPEN:
            return error_reply(req.id, Code.BAD_REQUEST, f"conversation {dialog_id[:64]} is closed")
        if event.get("type") in events.CONTENT_EVENTS and conv.awaiting_since is None:
            conv.awaiting_since = now_ms()
        registry = self.registry
        changes, notes = registry.emit(conv, consumer.id, events.Role.CONSUMER, [event])
        change = changes[0]
        if registry.agents is not None:
            notes += registry.agents.published(conv, change)
        sequence = change.get("sequence", CHAT_STATE_SEQUENCE)
        frame = encode_response(req.id, MessageType.PUBLISH_EVENT_RESPONSE, Code.OK, {"sequence": sequence})
        return Reply(Code.OK, frame, notes)

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
            body_out = events.messaging_notification_body(existing)
            notes.append((self, encode_notification(MessageType.MESSAGING_EVENT_NOTIFICATION, body_out)))
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
        # The first notification comes at once with the current state, an empty list when nothing matches:
        # clients wait for it before they reuse or request a conversation.
        existing = [conversation_change(c) for c in consumer.conversations.values() if c.state in wanted]
        note = encode_notification(MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, events.ex_change_body(sub_id, existing))
        return Reply(Code.OK, frame, [(self, note)])

    def unsubscribe_ex_conversations(self, req: Request) -> Reply:
        body = req.body
        sub_id = body.get("subscriptionId") if isinstance(body, dict) else None
        if not isinstance(sub_id, str) or sub_id not in self.ex_subscriptions:
            return error_reply(req.id, Code.NOT_FOUND, "unknown subscriptionId")
        del self.ex_subscriptions[sub_id]
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    # ------------------------------------------------------------------ the rest
    def get_clock(self, req: Request) -> Reply:
        body = {"currentTime": now_ms()}
        return Reply(Code.OK, encode_response(req.id, MessageType.GET_CLOCK_RESPONSE, Code.OK, body))

    def keep_alive(self, req: Request) -> Reply:
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    def init_connection(self, req: Request) -> Reply:
        # Reached only when the socket is already authenticated (the server handles the header-less case).
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    def set_user_profile(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        if not isinstance(req.body, dict):
            return error_reply(req.id, Code.BAD_REQUEST, "body must be an object")
        if len(json.dumps(req.body)) > MAX_PROFILE_BYTES:
            return error_reply(req.id, Code.BAD_REQUEST, f"profile over {MAX_PROFILE_BYTES} bytes")
        consumer.profile = req.body
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    def get_user_profile(self, req: Request) -> Reply:
        consumer = self.consumer
        assert consumer is not None
        profile: dict[str, Any] = consumer.profile or {}
        return Reply(Code.OK, encode_response(req.id, MessageType.GET_USER_PROFILE_RESPONSE, Code.OK, profile))


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
    MessageType.SET_USER_PROFILE: Session.set_user_profile,
    MessageType.GET_USER_PROFILE: Session.get_user_profile,
}
