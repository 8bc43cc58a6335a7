"""The envelope parser: valid frames round-trip, anything else raises ProtocolError only."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocol import (
    Correlator,
    Notification,
    ProtocolError,
    Request,
    Response,
    encode,
    encode_request,
    encode_response,
    parse,
    parse_request,
)
from harness.protocol.messages import (
    MessageType,
    close_conversation_body,
    closed_conversation_id,
    conversation_id_of,
    response_type_for,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def test_tutorial_request_parses_with_integer_id() -> None:
    req = parse('{"kind":"req","id":1,"type":"cm.ConsumerRequestConversation"}')
    assert req == Request("1", MessageType.REQUEST_CONVERSATION, None)


def test_response_echoes_id_as_string() -> None:
    frame = encode_response("1", response_type_for(MessageType.REQUEST_CONVERSATION), 200, {"conversationId": "c-1"})
    resp = parse(frame)
    assert isinstance(resp, Response)
    assert (resp.req_id, resp.code, resp.ok) == ("1", 200, True)
    assert json.loads(frame)["reqId"] == "1"
    assert conversation_id_of(resp.body) == "c-1"


def test_documented_close_response_without_type_parses() -> None:
    resp = parse('{"reqId":"A3HC","code":200}')
    assert isinstance(resp, Response) and resp.type == "" and resp.ok


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "bad json"),
        (b"\xff\xfe", "bad json"),
        ("[1,2]", "not an object"),
        ('"x"', "not an object"),
        ("{}", "missing field"),
        ('{"kind":"req","type":"x"}', "missing field"),
        ('{"kind":"req","id":true,"type":"x"}', "wrong type"),
        ('{"kind":"req","id":"","type":"x"}', "wrong type"),
        ('{"kind":"req","id":"' + "a" * 65 + '","type":"x"}', "wrong type"),
        ('{"kind":"req","id":"1","type":3}', "wrong type"),
        ('{"kind":"resp","reqId":"1"}', "missing field"),
        ('{"kind":"resp","reqId":"1","code":"200"}', "wrong type"),
        ('{"kind":"event","type":"x"}', "unknown kind"),
        ('{"kind":"notification"}', "missing field"),
    ],
)
def test_malformed_frames_raise_typed_error(frame: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(frame)
    assert info.value.reason == reason


def test_parse_request_refuses_responses() -> None:
    with pytest.raises(ProtocolError, match="not a request"):
        parse_request('{"kind":"resp","reqId":"1","code":200,"type":"t","body":{}}')


@given(st.one_of(st.text(), st.binary(), json_values.map(json.dumps)))
@settings(max_examples=400, deadline=None)
def test_arbitrary_input_raises_only_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse(frame)


@given(
    st.dictionaries(
        st.sampled_from(["kind", "id", "reqId", "type", "code", "body", "headers"]),
        json_values | st.sampled_from(["req", "resp", "notification"]),
    )
)
@settings(max_examples=400, deadline=None)
def test_envelope_shaped_objects_raise_only_protocol_error(data: dict) -> None:
    try:
        envelope = parse(json.dumps(data))
    except ProtocolError:
        return
    frame = encode(envelope)  # whatever parses encodes to a frame that parses back to the same frame
    assert encode(parse(frame)) == frame


@given(st.text(min_size=1, max_size=64), st.text(min_size=1), json_values)
def test_request_round_trip(req_id: str, type_: str, body: object) -> None:
    envelope = parse(encode_request(req_id, type_, body))
    assert envelope == Request(req_id, type_, body)


def test_notification_round_trip() -> None:
    note = Notification(MessageType.MESSAGING_EVENT_NOTIFICATION, {"changes": []})
    assert parse(encode(note)) == note


def test_close_body_round_trip_and_bare_element() -> None:
    body = close_conversation_body("c-9")
    assert closed_conversation_id(body) == "c-9"
    bare = {"conversationId": "c-9", "conversationField": body["conversationField"][0]}
    assert closed_conversation_id(bare) == "c-9"
    assert closed_conversation_id({"conversationId": "c-9", "conversationField": []}) is None
    assert closed_conversation_id("nope") is None


def test_correlator_matches_and_rejects_unknown() -> None:
    corr: Correlator[str] = Correlator()
    first, frame = corr.start(MessageType.REQUEST_CONVERSATION, None, "waiter-1")
    assert json.loads(frame) == {"kind": "req", "id": "1", "type": MessageType.REQUEST_CONVERSATION}
    second, _ = corr.start(MessageType.GET_CLOCK, None, "waiter-2")
    assert second.req_id == "2"
    assert corr.resolve(Response("1", "x", 200)).waiter == "waiter-1"
    with pytest.raises(ProtocolError, match="unexpected response"):
        corr.resolve(Response("1", "x", 200))
    assert [p.waiter for p in corr.drain()] == ["waiter-2"]
    assert corr.pending == {}
