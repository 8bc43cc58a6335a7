"""The rules both sides of the consumer connection share: routes, IDP bodies, the upgrade, closes, keepalive."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.protocol import closing, handshake, keepalive, paths
from harness.protocol import idp as contract
from harness.protocol.connection import Answered, Broken, ConsumerConnection, Late, Notified
from harness.protocol.envelope import encode_notification, encode_response, salvage_id


# ---------------------------------------------------------------- routes
def test_every_route_builds_a_path_that_it_matches() -> None:
    for route in paths.ROUTES:
        params = {name: f"v{i}" for i, name in enumerate(route.params)}
        assert route.match(route.path(**params)) == params


def test_route_parameters_stay_one_segment() -> None:
    path = paths.authenticate_path("qa 1/../x\r\n")
    assert "/" not in path.split("/api/account/")[1].split("/authenticate")[0]
    assert "\r" not in path and " " not in path
    assert paths.CONSUMER_SOCKET.match("/ws_api/account/a/b/messaging/consumer") is None


def test_socket_path_carries_the_version_query() -> None:
    assert paths.consumer_socket_path("123").endswith("/messaging/consumer?v=3")
    assert paths.csds_path("123", "idp").endswith("?version=1.0")


# ---------------------------------------------------------------- IDP bodies
def test_client_body_is_what_the_server_reads() -> None:
    body = contract.authenticate_body("abc")
    assert contract.token_field(json.loads(json.dumps(body)), contract.AUTHENTICATE_FIELDS) == "abc"
    assert contract.authorize_body() is None
    assert contract.token_field(contract.authorize_body("old"), contract.REFRESH_FIELDS) == "old"


def test_either_generation_of_field_names_is_read() -> None:
    assert contract.token_field({"id_token": "t"}, contract.AUTHENTICATE_FIELDS) == "t"
    assert contract.token_of({"token": "t"}) == "t" and contract.token_of({"jwt": "j"}) == "j"
    assert contract.token_of(contract.token_answer("x")) == "x"


@pytest.mark.parametrize("body", [[1], "text", {"authCode": 3}, {"authCode": ""}])
def test_bad_request_bodies_raise_body_error(body: object) -> None:
    with pytest.raises(contract.BodyError):
        contract.token_field(body, contract.AUTHENTICATE_FIELDS)


@pytest.mark.parametrize("answer", [{}, [], {"jwt": ""}, {"token": 5}, None])
def test_answers_without_a_token_raise_body_error(answer: object) -> None:
    with pytest.raises(contract.BodyError):
        contract.token_of(answer)


def test_csds_answer_is_read_back_in_both_forms() -> None:
    one = contract.csds_answer("123", "h:1", "idp")
    every = contract.csds_answer("123", "h:2", None)
    assert contract.base_uri_of(one, "idp") == "h:1"
    assert contract.base_uri_of(every, paths.ASYNC_MESSAGING_SERVICE) == "h:2"
    with pytest.raises(contract.BodyError):
        contract.base_uri_of({"baseURIs": []}, "idp")


# ---------------------------------------------------------------- upgrade
def test_accept_key_is_rfc_6455s_example() -> None:
    assert handshake.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_authorization_header_round_trip_and_refusals() -> None:
    assert handshake.token_of_authorization(handshake.authorization("a.b.c")) == "a.b.c"
    assert handshake.token_of_authorization("JWT  a.b.c ") == "a.b.c"
    for bad in ("Bearer a.b.c", "jwt", "jwt   ", ""):
        with pytest.raises(handshake.HandshakeError):
            handshake.token_of_authorization(bad)


def test_upgrade_request_and_answer() -> None:
    key = handshake.client_key(bytes(16))
    assert handshake.valid_client_key(key) and not handshake.valid_client_key(b"short")
    request = handshake.upgrade_request("/ws?v=3", "h:1", key, "tok", ["X-A: 1"])
    assert b"Authorization: jwt tok\r\n" in request and request.endswith(b"X-A: 1\r\n\r\n")
    assert b"Authorization" not in handshake.upgrade_request("/ws", "h", key, None)
    head = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + handshake.accept_key(key)
    assert handshake.parse_upgrade_answer(head, key).accepted
    assert not handshake.parse_upgrade_answer(head, handshake.client_key(b"x" * 16)).accepted
    assert handshake.parse_upgrade_answer(b"HTTP/1.1 401 Unauthorized", key).status == 401
    with pytest.raises(handshake.HandshakeError):
        handshake.parse_upgrade_answer(b"garbage", key)


# ---------------------------------------------------------------- closes
@given(st.text(max_size=200), st.integers(1000, 4999))
def test_close_payload_fits_a_control_frame_and_stays_utf8(reason: str, code: int) -> None:
    payload = closing.close_payload(code, reason)
    assert len(payload) <= 125
    parsed_code, parsed_reason = closing.parse_close_payload(payload)
    assert parsed_code == code and reason.startswith(parsed_reason)
    payload[2:].decode("utf-8")  # never cut inside a character


def test_empty_close_payload_is_no_status() -> None:
    assert closing.parse_close_payload(b"") == (closing.CloseCode.NO_STATUS, "")


def test_expiry_close_code_follows_the_identity() -> None:
    claims = closing.mark_anonymous({"lp.ext": {"sub": "x"}})
    assert closing.is_anonymous(claims) and not closing.is_anonymous({"lp.ext": {}})
    assert closing.expiry_close_code(True) == 4407 and closing.expiry_close_code(False) == 4401
    assert closing.rejection_close_code(True, claims) == 4407
    assert closing.rejection_close_code(False, claims) == 4401
    assert closing.rejection_close_code(True, None) == 4401


# ---------------------------------------------------------------- keepalive
def test_keepalive_pings_then_declares_a_silent_peer_dead() -> None:
    k = keepalive.Keepalive(interval=5.0, pong_timeout=None, now=100.0)
    assert k.check(101.0) == (keepalive.Due.NOTHING, 105.0)
    assert k.check(105.0)[0] is keepalive.Due.PING
    assert k.ping_sent_at(105.0) == 110.0
    assert k.pong_received(105.25) == pytest.approx(0.25) and not k.awaiting_pong
    assert k.pong_received(106.0) is None  # unsolicited
    k.ping_sent_at(110.0)
    assert k.check(114.9)[0] is keepalive.Due.NOTHING
    assert k.check(115.0)[0] is keepalive.Due.DEAD


def test_idle_and_expiry_deadlines() -> None:
    assert keepalive.is_idle(160.0, 40.0, 120.0) and not keepalive.is_idle(159.9, 40.0, 120.0)
    assert keepalive.expires_in(10.0, 12.0) == 0.0 and keepalive.expires_in(12.0, 10.0) == 2.0


# ---------------------------------------------------------------- frames and requests
@pytest.mark.parametrize(
    ("frame", "key", "expected"),
    [
        ('{"kind":"resp","reqId":<not json>', "reqId", None),
        ('{"kind":"resp","reqId":"12","code":', "reqId", "12"),
        ('{"reqId": 7, broken', "reqId", "7"),
        ('{"id":5,"type":3}', "id", "5"),
        ('{"id":true}', "id", None),
        ("garbage", "id", None),
    ],
)
def test_salvage_id(frame: str, key: str, expected: str | None) -> None:
    assert salvage_id(frame, key) == expected
    assert salvage_id(frame.encode(), key) == expected


def test_connection_turns_frames_into_events() -> None:
    conn: ConsumerConnection[str] = ConsumerConnection()
    entry, text = conn.request("GetClock", None, "waiter-1")
    assert json.loads(text)["id"] == entry.req_id
    event = conn.receive_text(encode_response(entry.req_id, "GetClockResponse", 200, {}))
    assert isinstance(event, Answered) and event.entry is entry
    assert isinstance(conn.receive_text(encode_response(entry.req_id, "x", 200)), Late)
    assert isinstance(conn.receive_text(encode_notification("n", {})), Notified)


def test_broken_frame_fails_the_request_it_names_or_the_only_one_waiting() -> None:
    conn: ConsumerConnection[str] = ConsumerConnection()
    first, _ = conn.request("A", None, "w1")
    second, _ = conn.request("B", None, "w2")
    event = conn.receive_text('{"kind":"resp","reqId":"' + second.req_id + '",')
    assert isinstance(event, Broken) and event.failed is second
    event = conn.receive_text("not json at all")
    assert isinstance(event, Broken) and event.failed is first  # the only one still waiting
    third, _ = conn.request("C", None, "w3")
    event = conn.receive_text('{"kind":"notification", broken')
    assert isinstance(event, Broken) and event.failed is None and third.req_id in conn.requests.pending


def test_importing_the_protocol_changes_nothing_in_the_process() -> None:
    # pyjwt itself imports socket and ssl (its JWKS client); what the protocol's own modules may
    # import is checked from the source by tests/test_architecture.py.
    code = (
        "import sys, warnings; before = list(warnings.filters); mods = set(sys.modules);"
        "import harness.protocol, harness.protocol.connection, harness.protocol.handshake, harness.protocol.closing,"
        " harness.protocol.keepalive, harness.protocol.idp, harness.protocol.paths, harness.protocol.tokens;"
        "assert warnings.filters == before, 'warning filters changed';"
        "bad = {m for m in set(sys.modules) - mods if m.split('.')[0] in"
        " ('gevent', 'asyncio', 'aiohttp', 'locust', 'requests', 'websocket', 'geventhttpclient')};"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_conversation_states_read_from_a_change_notification() -> None:
    from harness.protocol.messages import conversation_states

    body = {
        "subscriptionId": "s",
        "changes": [
            {"type": "UPSERT", "result": {"convId": "c1", "conversationDetails": {"state": "OPEN"}}},
            {"type": "UPSERT", "result": {"convId": "c2", "conversationDetails": {"state": "CLOSE"}}},
            {"type": "DELETE", "result": {"convId": "c3", "conversationDetails": {"state": "CLOSE"}}},
            {"type": "UPSERT", "result": "junk"},
        ],
    }
    assert conversation_states(body) == {"c1": "OPEN", "c2": "CLOSE"}
    assert conversation_states(None) == {} and conversation_states({"changes": "x"}) == {}


def test_host_port_takes_the_schemes_default() -> None:
    assert paths.host_port("https://va.idp.liveperson.net") == ("va.idp.liveperson.net", 443)
    assert paths.host_port("ws://127.0.0.1") == ("127.0.0.1", 80)
    assert paths.host_port("wss://[::1]:8443/x") == ("::1", 8443)
    assert paths.CONSUMER_SOCKET.pattern("[^/]+", suffix="7") == r"/ws_api/account/(?P<account7>[^/]+)/messaging/consumer"
