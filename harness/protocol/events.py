"""Messaging events and conversation changes: one definition of each shape, for both sides.

The consumer publishes ``ContentEvent`` / ``AcceptStatusEvent`` / ``ChatStateEvent`` bodies in
``ms.PublishEvent`` (schemas ms/*.json); the server (the emulator's agent side included) sends
them back as the changes of ``ms.MessagingEventNotification``, each with ``originatorMetadata``
``{id, role}`` and the ``conversationId`` as in LivePerson's examples, and tells subscribers about
conversations with the ``UPSERT`` / ``DELETE`` changes of ``cqm.ExConversationChangeNotification``
(aam/subscribeExConversationsNotification.json). Builders return plain dicts ready for
:func:`~harness.protocol.envelope.encode_request` / ``encode_notification``; parsers take a
decoded body, never raise, and skip what they cannot read (clients must ignore unknown fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from harness.protocol.messages import STATE_OPEN

TEXT_PLAIN: Final = "text/plain"


class EventType:
    """``event.type`` values (ms/AbstractMessagingEvent.json)."""

    CONTENT: Final = "ContentEvent"
    ACCEPT_STATUS: Final = "AcceptStatusEvent"
    CHAT_STATE: Final = "ChatStateEvent"
    RICH_CONTENT: Final = "RichContentEvent"


class AcceptStatus:
    """``AcceptStatusEvent.status`` (ms/AcceptStatusEvent.json): ACCEPT on receipt, READ on display."""

    ACCEPT: Final = "ACCEPT"
    READ: Final = "READ"
    ACCESS: Final = "ACCESS"
    NACK: Final = "NACK"
    ACTION: Final = "ACTION"


class ChatState:
    """``ChatStateEvent.chatState`` (ms/ChatStateEvent.json)."""

    ACTIVE: Final = "ACTIVE"
    INACTIVE: Final = "INACTIVE"
    GONE: Final = "GONE"
    COMPOSING: Final = "COMPOSING"
    PAUSE: Final = "PAUSE"


class Role:
    """Participant roles: in ``participants``, ``participantsPId`` and ``originatorMetadata.role``."""

    CONSUMER: Final = "CONSUMER"
    ASSIGNED_AGENT: Final = "ASSIGNED_AGENT"
    MANAGER: Final = "MANAGER"
    AGENTS: Final = frozenset({ASSIGNED_AGENT, MANAGER})  # the brand's side of a conversation


class Change:
    """``changes[].type`` of an ExConversationChangeNotification."""

    UPSERT: Final = "UPSERT"
    DELETE: Final = "DELETE"


CONTENT_EVENTS: Final = frozenset({EventType.CONTENT, EventType.RICH_CONTENT})  # what a reply answers
NO_SKILL: Final = "-1"  # conversationDetails.skillId of a conversation requested without one


def numbered(event: Mapping[str, Any]) -> bool:
    """Whether a published event takes the conversation's next ``sequence`` (and stays in its
    transcript for replays): content and receipts do; a ChatStateEvent does not (the PCS tutorial's
    typing notifications carry none)."""
    return event.get("type") != EventType.CHAT_STATE


# ---------------------------------------------------------------------- event bodies
def content_event(message: str) -> dict[str, Any]:
    """A plain-text ``ContentEvent`` (ms/TextValue.json)."""
    return {"type": EventType.CONTENT, "contentType": TEXT_PLAIN, "message": message}


def accept_status_event(status: str, sequences: Iterable[int]) -> dict[str, Any]:
    """A receipt (ACCEPT, READ, ...) for the events with these sequence numbers."""
    return {"type": EventType.ACCEPT_STATUS, "status": status, "sequenceList": list(sequences)}


def chat_state_event(state: str) -> dict[str, Any]:
    """A typing/presence state such as COMPOSING: it takes no sequence number."""
    return {"type": EventType.CHAT_STATE, "chatState": state}


def publish_body(dialog_id: str, event: Mapping[str, Any], conversation_id: str | None = None) -> dict[str, Any]:
    """The body of ``ms.PublishEvent`` (ms/PublishEvent.json): ``dialogId`` is the conversation id
    for the main dialog; ``conversationId`` is added for multi-dialog servers when given."""
    body: dict[str, Any] = {"dialogId": dialog_id, "event": dict(event)}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    return body


def publish_event_of(body: object) -> tuple[str, dict[str, Any]] | None:
    """(dialog id, event) of an ``ms.PublishEvent`` body, or None when it is not one.

    Like the emulator has always done, a body that names only ``conversationId`` is read as its
    main dialog.
    """
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
        return None
    dialog_id = body.get("dialogId") or body.get("conversationId")
    event = body["event"]
    if not isinstance(dialog_id, str) or not isinstance(event.get("type"), str):
        return None
    return dialog_id, event


def sequence_of(body: object) -> int | None:
    """The ``sequence`` of an ``ms.PublishEventResponse`` body (ms/PublishEventSuccess.json)."""
    value = body.get("sequence") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def subscribe_messaging_body(dialog_id: str, from_seq: int = 0) -> dict[str, Any]:
    """The body of ``ms.SubscribeMessagingEvents`` (ms/subscribeMessagingEvents.json): the events of
    ``dialog_id`` from sequence ``from_seq`` on (earlier ones are replayed at once)."""
    return {"dialogId": dialog_id, "fromSeq": from_seq}


def subscribe_conversations_body(states: Iterable[str] = (STATE_OPEN,)) -> dict[str, Any]:
    """The body of ``cqm.SubscribeExConversations`` (aam/subscribeExConversations.json) for these states."""
    return {"convState": list(states)}


# ---------------------------------------------------------------------- messaging notifications
def messaging_change(
    *,
    sequence: int | None,
    originator_id: str,
    role: str,
    event: Mapping[str, Any],
    dialog_id: str,
    server_timestamp: int,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """One change of ``ms.MessagingEventNotification`` (ms/messagingEventNotification.json).

    ``sequence`` None leaves the key out: chat states are not numbered. ``conversation_id``
    defaults to ``dialog_id`` (the main dialog).
    """
    change: dict[str, Any] = {}
    if sequence is not None:
        change["sequence"] = sequence
    change.update(
        {
            "originatorId": originator_id,
            "originatorMetadata": {"id": originator_id, "role": role},
            "serverTimestamp": server_timestamp,
            "event": dict(event),
            "dialogId": dialog_id,
            "conversationId": conversation_id if conversation_id is not None else dialog_id,
        }
    )
    return change


def messaging_notification_body(changes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of ``ms.MessagingEventNotification``."""
    return {"changes": [dict(c) for c in changes]}


@dataclass(frozen=True, slots=True)
class MessagingChange:
    """One change of a MessagingEventNotification, as a client reads it."""

    sequence: int | None
    originator_id: str
    role: str | None  # originatorMetadata.role; None when the server sent no metadata
    dialog_id: str
    conversation_id: str
    server_timestamp: int | None
    event_type: str
    message: str | None = None  # ContentEvent
    status: str | None = None  # AcceptStatusEvent
    sequence_list: tuple[int, ...] = ()  # AcceptStatusEvent
    chat_state: str | None = None  # ChatStateEvent

    def from_agent(self, consumer_id: str | None = None) -> bool:
        """Whether the brand's side sent it: by role, else (no metadata) by an originator not ours."""
        if self.role is not None:
            return self.role in Role.AGENTS
        return consumer_id is not None and self.originator_id != consumer_id

    @property
    def is_content(self) -> bool:
        return self.event_type in (EventType.CONTENT, EventType.RICH_CONTENT)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_change(change: object) -> MessagingChange | None:
    if not isinstance(change, dict):
        return None
    event = change.get("event")
    dialog_id = change.get("dialogId")
    originator = change.get("originatorId")
    if not isinstance(event, dict) or not isinstance(dialog_id, str) or not isinstance(event.get("type"), str):
        return None
    meta = change.get("originatorMetadata")
    role = meta.get("role") if isinstance(meta, dict) and isinstance(meta.get("role"), str) else None
    if not isinstance(originator, str) and isinstance(meta, dict) and isinstance(meta.get("id"), str):
        originator = meta["id"]
    conversation_id = change.get("conversationId")
    raw_list = event.get("sequenceList")
    if isinstance(raw_list, int):  # a single-element array may be sent bare (lp-protocol.md 3.2)
        raw_list = [raw_list]
    seqs = tuple(s for s in raw_list if _int(s) is not None) if isinstance(raw_list, list) else ()
    return MessagingChange(
        sequence=_int(change.get("sequence")),
        originator_id=originator if isinstance(originator, str) else "",
        role=role,
        dialog_id=dialog_id,
        conversation_id=conversation_id if isinstance(conversation_id, str) else dialog_id,
        server_timestamp=_int(change.get("serverTimestamp")),
        event_type=event["type"],
        message=event.get("message") if isinstance(event.get("message"), str) else None,
        status=event.get("status") if isinstance(event.get("status"), str) else None,
        sequence_list=seqs,
        chat_state=event.get("chatState") if isinstance(event.get("chatState"), str) else None,
    )


def messaging_changes(body: object) -> list[MessagingChange]:
    """The readable changes of an ``ms.MessagingEventNotification`` body, in order."""
    changes = body.get("changes") if isinstance(body, dict) else None
    if isinstance(changes, dict):
        changes = [changes]
    out = []
    for raw in changes if isinstance(changes, list) else ():
        change = _read_change(raw)
        if change is not None:
            out.append(change)
    return out


# ---------------------------------------------------------------------- conversation changes
def participants(consumer_id: str, agent_ids: Iterable[str] = ()) -> list[dict[str, str]]:
    """The schema's ``participants`` list: the consumer, then the assigned agents."""
    out = [{"id": consumer_id, "role": Role.CONSUMER}]
    out.extend({"id": agent, "role": Role.ASSIGNED_AGENT} for agent in agent_ids)
    return out


def main_dialog(
    conversation_id: str,
    state: str,
    start_ts: int,
    consumer_id: str,
    agent_ids: Iterable[str] = (),
    end_ts: int | None = None,
) -> dict[str, Any]:
    """The ``dialogs`` entry of a single-dialog conversation (its MAIN dialog has the conversation's id)."""
    people = participants(consumer_id, agent_ids)
    dialog: dict[str, Any] = {
        "dialogId": conversation_id,
        "participants": [p["id"] for p in people],
        "participantsDetails": [{**p, "state": "ACTIVE"} for p in people],
        "dialogType": "MAIN",
        "channelType": "MESSAGING",
        "state": state,
        "creationTs": start_ts,
    }
    if end_ts is not None:
        dialog["endTs"] = end_ts
    return dialog


def conversation_details(
    *,
    consumer_id: str,
    state: str,
    start_ts: int,
    last_update: int,
    end_ts: int | None = None,
    agent_ids: Iterable[str] = (),
    ttr_type: str = "NORMAL",
    ttr_value: int = 3600,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``conversationDetails`` in both the schema's form (``participants``) and the tutorial's
    (``participantsPId``): clients ignore what they do not read. ``extra`` adds fields such as
    ``brandId``, ``stage``, ``skillId`` or ``dialogs`` (see :func:`main_dialog`)."""
    agents = list(agent_ids)
    pid: dict[str, list[str]] = {Role.CONSUMER: [consumer_id]}
    if agents:
        pid[Role.ASSIGNED_AGENT] = agents
    details: dict[str, Any] = {
        "participants": participants(consumer_id, agents),
        "participantsPId": pid,
        "state": state,
        "startTs": start_ts,
        "metaDataLastUpdateTs": last_update,
        "ttr": {"ttrType": ttr_type, "value": ttr_value},
    }
    if end_ts is not None:
        details["endTs"] = end_ts
    if extra:
        details.update(extra)
    return details


def conversation_change(
    kind: str,
    conversation_id: str,
    last_update: int,
    details: Mapping[str, Any],
    effective_ttr: int | None = None,
) -> dict[str, Any]:
    """One ``changes[]`` entry (UPSERT or DELETE); the schema wants the details on both.

    ``effective_ttr``: the result's ``effectiveTTR`` (epoch ms by which the brand should answer,
    -1 when nothing is awaited), as in LivePerson's multi-dialog example; left out when None.
    """
    result: dict[str, Any] = {"convId": conversation_id, "lastUpdateTime": last_update}
    if effective_ttr is not None:
        result["effectiveTTR"] = effective_ttr
    result["conversationDetails"] = dict(details)
    return {"type": kind, "result": result}


def ex_change_body(subscription_id: str, changes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of ``cqm.ExConversationChangeNotification``; an empty ``changes`` is the first
    notification of a subscription that finds nothing."""
    return {"subscriptionId": subscription_id, "changes": [dict(c) for c in changes]}


@dataclass(frozen=True, slots=True)
class ConversationChange:
    """One change of an ExConversationChangeNotification, as a client reads it."""

    kind: str  # UPSERT | DELETE
    conversation_id: str
    state: str | None
    agent_ids: tuple[str, ...] = ()
    start_ts: int | None = None

    @property
    def is_open(self) -> bool:
        return self.kind == Change.UPSERT and self.state == STATE_OPEN


def agent_ids_of(details: Mapping[str, Any]) -> tuple[str, ...]:
    """The assigned agents in ``conversationDetails``, from either participants form."""
    found: list[str] = []
    people = details.get("participants")
    for person in people if isinstance(people, list) else ():
        if isinstance(person, dict) and person.get("role") in Role.AGENTS and isinstance(person.get("id"), str):
            found.append(person["id"])
    pid = details.get("participantsPId")
    if isinstance(pid, dict):
        for role in sorted(Role.AGENTS):
            ids = pid.get(role)
            found.extend(i for i in (ids if isinstance(ids, list) else [ids]) if isinstance(i, str))
    return tuple(dict.fromkeys(found))


def conversation_changes(body: object) -> list[ConversationChange]:
    """The readable changes of a ``cqm.ExConversationChangeNotification`` body, in order."""
    changes = body.get("changes") if isinstance(body, dict) else None
    if isinstance(changes, dict):
        changes = [changes]
    out = []
    for change in changes if isinstance(changes, list) else ():
        result = change.get("result") if isinstance(change, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("convId"), str):
            continue
        details = result.get("conversationDetails")
        details = details if isinstance(details, dict) else {}
        state = details.get("state")
        kind = change.get("type", Change.UPSERT)
        out.append(
            ConversationChange(
                kind=kind if isinstance(kind, str) else Change.UPSERT,
                conversation_id=result["convId"],
                state=state if isinstance(state, str) else None,
                agent_ids=agent_ids_of(details),
                start_ts=_int(details.get("startTs")),
            )
        )
    return out


def open_conversation_id(body: object) -> str | None:
    """The newest OPEN conversation an ExConversationChangeNotification names (None: none open)."""
    found = [c for c in conversation_changes(body) if c.is_open]
    found.sort(key=lambda c: c.start_ts or 0)
    return found[-1].conversation_id if found else None
