"""The shared event shapes: what the builders make validates against LivePerson's schemas, and the
parsers read back what the builders made (and skip what they cannot read, never raising)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from harness.protocol import events, messages
from harness.protocol.envelope import encode_notification, encode_request
from harness.protocol.events import AcceptStatus, Change, ChatState, EventType, Role
from harness.protocol.messages import MessageType
from tests.emulator.test_schemas import validate  # noqa: F401  (the schema fixture, shared)

CONV = "7507be78-60ef-4468-b3b1-baa47fbeea21"
CONSUMER = "72fca421-0000-4000-8000-000000000001"
AGENT = "734d9867-0000-4000-8000-000000000002"


def test_consumer_events_match_the_schemas(validate) -> None:  # noqa: F811
    for event, schema in (
        (events.content_event("hi there"), "ms/TextValue.json"),
        (events.accept_status_event(AcceptStatus.ACCEPT, [3]), "ms/AcceptStatusEvent.json"),
        (events.accept_status_event(AcceptStatus.READ, [3, 4]), "ms/AcceptStatusEvent.json"),
        (events.chat_state_event(ChatState.COMPOSING), "ms/ChatStateEvent.json"),
    ):
        validate(schema, event)
        validate("ms/AbstractMessagingEvent.json", event)
        body = events.publish_body(CONV, event)
        validate("ms/PublishEvent.json", body)
        validate("ws/consumerRequests.json", json.loads(encode_request("7", MessageType.PUBLISH_EVENT, body)))


def test_init_connection_matches_the_schemas_and_reads_back(validate) -> None:  # noqa: F811
    headers = messages.init_connection_headers("a.b.c", {"deviceFamily": "DESKTOP", "os": "LINUX"})
    validate("infra/consumerAuthenticationHeader.json", headers[-1])
    validate("infra/clientPropertiesHeader.json", headers[0])
    validate("ws/consumerRequests.json", json.loads(encode_request("0", MessageType.INIT_CONNECTION, headers=headers)))
    assert messages.token_of_init_connection(headers) == "a.b.c"
    assert messages.token_of_init_connection(headers[-1]) == "a.b.c"  # a bare header: a list of one
    assert messages.token_of_init_connection([{"type": messages.CLIENT_PROPERTIES_HEADER}]) is None
    assert messages.token_of_init_connection(None) is None


def test_agent_messages_match_the_notification_schemas_and_read_back(validate) -> None:  # noqa: F811
    content = events.messaging_change(
        sequence=4,
        originator_id=AGENT,
        role=Role.ASSIGNED_AGENT,
        event=events.content_event("hello from the agent"),
        dialog_id=CONV,
        server_timestamp=1477840831162,
    )
    receipt = events.messaging_change(
        sequence=5,
        originator_id=AGENT,
        role=Role.ASSIGNED_AGENT,
        event=events.accept_status_event(AcceptStatus.READ, [3]),
        dialog_id=CONV,
        server_timestamp=1477840831163,
    )
    body = events.messaging_notification_body([content, receipt])
    validate("ms/messagingEventNotification.json", body)
    validate(
        "ws/consumerNotifications.json", json.loads(encode_notification(MessageType.MESSAGING_EVENT_NOTIFICATION, body))
    )
    assert content["originatorMetadata"] == {"id": AGENT, "role": Role.ASSIGNED_AGENT}
    assert content["conversationId"] == CONV

    first, second = events.messaging_changes(body)
    assert (first.sequence, first.originator_id, first.role, first.dialog_id, first.conversation_id) == (
        4,
        AGENT,
        Role.ASSIGNED_AGENT,
        CONV,
        CONV,
    )
    assert first.is_content and first.message == "hello from the agent" and first.from_agent(CONSUMER)
    assert second.event_type == EventType.ACCEPT_STATUS and second.status == AcceptStatus.READ
    assert second.sequence_list == (3,) and not second.is_content


def test_a_chat_state_carries_no_sequence() -> None:
    change = events.messaging_change(
        sequence=None,
        originator_id=AGENT,
        role=Role.ASSIGNED_AGENT,
        event=events.chat_state_event(ChatState.COMPOSING),
        dialog_id=CONV,
        server_timestamp=1,
    )
    assert "sequence" not in change
    (read,) = events.messaging_changes({"changes": [change]})
    assert read.sequence is None and read.chat_state == ChatState.COMPOSING


def test_who_sent_a_change_without_metadata_is_read_from_the_originator() -> None:
    bare = {
        "sequence": 0,
        "originatorId": AGENT,
        "serverTimestamp": 1,
        "event": events.content_event("x"),
        "dialogId": CONV,
    }
    (change,) = events.messaging_changes({"changes": bare})  # a single change may be sent bare
    assert change.role is None
    assert change.from_agent(CONSUMER)
    assert not change.from_agent(AGENT)
    assert not change.from_agent(None)  # no metadata and no consumer id: cannot tell, so not an agent's
    mine = events.messaging_change(
        sequence=1, originator_id=CONSUMER, role=Role.CONSUMER, event=bare["event"], dialog_id=CONV, server_timestamp=2
    )
    assert not events.messaging_changes({"changes": [mine]})[0].from_agent(CONSUMER)


def test_conversation_changes_match_the_schema_and_read_back(validate) -> None:  # noqa: F811
    details = events.conversation_details(
        consumer_id=CONSUMER,
        state=messages.STATE_OPEN,
        start_ts=10,
        last_update=20,
        agent_ids=[AGENT],
        extra={"brandId": "qa1", "dialogs": [events.main_dialog(CONV, messages.STATE_OPEN, 10, CONSUMER, [AGENT])]},
    )
    older = events.conversation_details(consumer_id=CONSUMER, state=messages.STATE_OPEN, start_ts=5, last_update=6)
    closed = events.conversation_details(
        consumer_id=CONSUMER, state=messages.STATE_CLOSE, start_ts=1, last_update=3, end_ts=3
    )
    body = events.ex_change_body(
        "sub-1",
        [
            events.conversation_change(Change.UPSERT, CONV, 20, details),
            events.conversation_change(Change.UPSERT, "older", 6, older),
            events.conversation_change(Change.DELETE, "gone", 3, closed),
        ],
    )
    validate("aam/subscribeExConversationsNotification.json", body)
    validate(
        "ws/consumerNotifications.json",
        json.loads(encode_notification(MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, body)),
    )
    validate("aam/subscribeExConversationsNotification.json", events.ex_change_body("sub-2", []))

    new, old, gone = events.conversation_changes(body)
    assert (new.kind, new.conversation_id, new.state, new.agent_ids, new.is_open) == (
        Change.UPSERT,
        CONV,
        messages.STATE_OPEN,
        (AGENT,),
        True,
    )
    assert old.agent_ids == () and old.is_open
    assert gone.kind == Change.DELETE and not gone.is_open
    assert events.open_conversation_id(body) == CONV  # the newest of the open ones
    assert events.open_conversation_id(events.ex_change_body("sub-2", [])) is None
    # The older reader of messages.py agrees on the states.
    assert messages.conversation_states(body) == {CONV: "OPEN", "older": "OPEN"}


def test_agents_are_read_from_the_tutorial_form_too() -> None:
    details = {"participantsPId": {"CONSUMER": [CONSUMER], "ASSIGNED_AGENT": [AGENT]}, "state": "OPEN"}
    (change,) = events.conversation_changes(
        {"changes": [{"type": "UPSERT", "result": {"convId": CONV, "conversationDetails": details}}]}
    )
    assert change.agent_ids == (AGENT,)


def test_publish_bodies_and_responses_read_back() -> None:
    event = events.content_event("x")
    assert events.publish_event_of(events.publish_body(CONV, event)) == (CONV, event)
    assert events.publish_event_of({"conversationId": CONV, "event": event}) == (CONV, event)
    assert events.publish_event_of({"dialogId": CONV, "event": {"message": "no type"}}) is None
    assert events.sequence_of({"sequence": 3}) == 3
    for bad in ({"sequence": -1}, {"sequence": True}, {}, None, "3"):
        assert events.sequence_of(bad) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_the_parsers_never_raise(body: object) -> None:
    events.messaging_changes(body)
    events.conversation_changes(body)
    events.open_conversation_id(body)
    events.publish_event_of(body)
    events.sequence_of(body)
    messages.token_of_init_connection(body)
    for change in ({"changes": [body]}, {"changes": [{"event": body, "dialogId": CONV}]}):
        events.messaging_changes(change)
        events.conversation_changes({"changes": [{"result": {"convId": "c", "conversationDetails": body}}]})


def test_subscription_bodies_match_the_schemas(validate) -> None:  # noqa: F811
    body = events.subscribe_messaging_body(CONV, 4)
    validate("ms/subscribeMessagingEvents.json", body)
    validate(
        "ws/consumerRequests.json",
        json.loads(encode_request("3", MessageType.SUBSCRIBE_MESSAGING_EVENTS, body)),
    )
    conversations = events.subscribe_conversations_body()
    assert conversations == {"convState": ["OPEN"]}
    validate("aam/subscribeExConversations.json", conversations)
    validate(
        "ws/consumerRequests.json",
        json.loads(encode_request("4", MessageType.SUBSCRIBE_EX_CONVERSATIONS, conversations)),
    )
