"""The consumer messaging WebSocket: handshake, every request type, errors, timers."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from harness.protocol import tokens
from tests.emulator.helpers import ACCOUNT, Client, close_body, lp_token, ws_url


def _handshake_status(url: str, header: list[str], account: str = ACCOUNT) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(ws_url(url, account), header=header, timeout=5)
    return info.value.status_code


def test_conversation_lifecycle(emu) -> None:
    client = Client(emu.url, lp_token(emu.url))
    client.ws.send('{"kind":"req","id":1,"type":"cm.ConsumerRequestConversation"}')  # the tutorial's frame
    resp = client.recv_json()
    assert resp["kind"] == "resp" and resp["reqId"] == "1" and resp["code"] == 200
    assert resp["type"] == "cm.RequestConversationResponse"
    conv = resp["body"]["conversationId"]
    second = client.request("cm.ConsumerRequestConversation")
    assert second["code"] == 400 and conv in second["body"] and second["type"] == ".ReqBody$StringResp"
    closed = client.request("cm.UpdateConversationField", close_body(conv))
    assert closed["code"] == 200 and closed["type"] == ".ReqBody$StringResp"
    again = client.request("cm.UpdateConversationField", close_body(conv))
    assert again["code"] == 400
    unknown = client.request("cm.UpdateConversationField", close_body("no-such-conversation"))
    assert unknown["code"] == 404
    bad = client.request("cm.UpdateConversationField", {"conversationId": conv})
    assert bad["code"] == 400
    new = client.request("cm.ConsumerRequestConversation", {"brandId": ACCOUNT, "skillId": "-1"})
    assert new["code"] == 200 and new["body"]["conversationId"] != conv
    client.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["conversations"] == {"open": 1, "opened": 2, "closed": 1}
    assert ledger["endpoints"]["cm.ConsumerRequestConversation"]["errors"] == {"400": 1}
    assert ledger["endpoints"]["cm.UpdateConversationField"]["errors"] == {"400": 2, "404": 1}
    assert ledger["sockets"]["closed_by_client"] == 1


def test_conversation_belongs_to_the_consumer_across_sockets(emu) -> None:
    token = lp_token(emu.url)
    first = Client(emu.url, token)
    conv = first.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    first.close()
    second = Client(emu.url, token)  # same consumer, new socket: the conversation is still open
    resp = second.request("cm.ConsumerRequestConversation")
    assert resp["code"] == 400 and conv in resp["body"]
    assert second.request("cm.UpdateConversationField", close_body(conv))["code"] == 200
    other = Client(emu.url, lp_token(emu.url))  # another consumer cannot close it
    assert other.request("cm.UpdateConversationField", close_body(conv))["code"] == 404
    second.close()
    other.close()


def test_getclock_keepalive_unknown_and_malformed(emu) -> None:
    client = Client(emu.url, lp_token(emu.url))
    before = int(time.time() * 1000)
    clock = client.request("GetClock")
    assert clock["code"] == 200 and clock["type"] == "GetClockResponse"
    assert before - 1000 <= clock["body"]["currentTime"] <= int(time.time() * 1000) + 1000
    assert client.request("KeepAlive")["code"] == 200
    unknown = client.request("cm.NoSuchThing")
    assert unknown["code"] == 400 and "unknown request type" in unknown["body"]
    for frame, req_id in (
        ("not json", "0"),
        ("[1,2]", "0"),
        ('{"kind":"req","id":"77"}', "77"),
        ('{"kind":"resp"}', "0"),
    ):
        client.ws.send(frame)
        resp = client.recv_json()
        assert resp["code"] == 400 and resp["reqId"] == req_id and resp["body"].startswith("malformed")
    client.ws.send_binary(b'{"kind":"req","id":"b1","type":"GetClock"}')
    assert client.recv_json()["reqId"] == "b1"
    assert client.request("GetClock")["code"] == 200  # the socket stayed up
    client.close()
    ledger = emu.ledger()["endpoints"]
    assert ledger["malformed"]["received"] == 4 and ledger["malformed"]["errors"] == {"400": 4}
    assert ledger["unknown"]["errors"] == {"400": 1}
    assert ledger["GetClock"]["ok"] == 3


def test_ping_gets_pong(emu) -> None:
    client = Client(emu.url, lp_token(emu.url))
    client.ws.ping(b"hello")
    opcode, data = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and data == b"hello"
    client.close()
    pings = emu.ledger()["pings"]
    assert pings == {"received": 1, "ponged": 1, "withheld": 0}


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (["Authorization: jwt not.a.token"], 401),
        (["Authorization: Bearer x"], 401),
        (["Authorization: jwt"], 401),
    ],
)
def test_handshake_rejects_bad_tokens(emu, header: list[str], status: int) -> None:
    assert _handshake_status(emu.url, header) == status
    ledger = emu.ledger()
    assert ledger["sockets"]["rejected"] == 1 and ledger["endpoints"]["connect"]["errors"] == {str(status): 1}


def test_handshake_wrong_account_and_anonymous_token(emu) -> None:
    token = lp_token(emu.url, "other-account")
    assert _handshake_status(emu.url, [f"Authorization: jwt {token}"]) == 403
    from tests.emulator.helpers import anonymous_token

    anon = anonymous_token(emu.url)  # an identity token is not an LP token
    assert _handshake_status(emu.url, [f"Authorization: jwt {anon}"]) == 401


def test_handshake_expired_token(emulator) -> None:
    emu = emulator("--lp-token-lifetime", "1")
    token = lp_token(emu.url)
    wait = tokens.unverified_claims(token)["exp"] - time.time() + 0.05
    if wait > 0:
        time.sleep(wait)  # the token's own clock: nothing to await
    assert _handshake_status(emu.url, [f"Authorization: jwt {token}"]) == 401


def test_auth_failure_close_mode(emulator) -> None:
    emu = emulator("--auth-failure", "close")
    client = Client(emu.url, "bad.token.here")
    assert client.wait_close()[0] == 4401
    assert emu.ledger()["sockets"]["closed_by_server"] == {"4401": 1}


def test_init_connection_header_less(emu) -> None:
    token = lp_token(emu.url)
    client = Client(emu.url, None)
    assert client.request("GetClock")["code"] == 401  # nothing but InitConnection before auth
    headers = [
        {"type": ".ams.headers.ClientProperties", "deviceFamily": "DESKTOP", "os": "LINUX"},
        {"type": ".ams.headers.ConsumerAuthentication", "jwt": token},
    ]
    client.ws.send(json.dumps({"kind": "req", "id": "0", "type": "InitConnection", "headers": headers}))
    resp = client.recv_json()
    assert resp["reqId"] == "0" and resp["code"] == 200
    assert client.request("cm.ConsumerRequestConversation")["code"] == 200
    assert client.request("InitConnection")["code"] == 200  # again, once authenticated: accepted
    client.close()


def test_init_connection_bad_token_and_timeout(emulator) -> None:
    emu = emulator("--init-timeout", "0.3")
    client = Client(emu.url, None)
    client.ws.send(
        json.dumps(
            {
                "kind": "req",
                "id": "0",
                "type": "InitConnection",
                "headers": [{"type": ".ams.headers.ConsumerAuthentication", "jwt": "bad"}],
            }
        )
    )
    assert client.recv_json()["code"] == 401
    assert client.wait_close()[0] == 4401
    silent = Client(emu.url, None)
    assert silent.wait_close()[0] == 4401  # no InitConnection within the grace period
    assert emu.ledger()["sockets"]["closed_by_server"] == {"4401": 2}


def test_idle_timeout_closes_and_frames_reset_it(emulator) -> None:
    emu = emulator("--idle-timeout", "0.6")
    token = lp_token(emu.url)
    busy = Client(emu.url, token)
    idle = Client(emu.url, token)
    start = time.monotonic()
    for _ in range(4):  # activity every 0.25 s keeps it open past the timeout
        busy.ws.ping(b"k")
        busy.ws.recv_data(control_frame=True)
        time.sleep(0.25)
    code, reason = idle.wait_close()
    assert code == 1008 and "idle" in reason
    assert time.monotonic() - start >= 0.5
    assert busy.request("GetClock")["code"] == 200
    busy.close()
    ledger = emu.ledger()["sockets"]
    assert ledger["idle_closed"] == 1 and ledger["closed_by_server"] == {"1008": 1}


def test_token_expiry_closes_4407_for_anonymous_4401_for_external(emulator) -> None:
    emu = emulator("--lp-token-lifetime", "1", "--idle-timeout", "30")
    anon_client = Client(emu.url, lp_token(emu.url))
    key = tokens.load_private_key(tokens.TUTORIAL_PRIVATE_KEY_PEM)
    external = tokens.sign(tokens.external_claims(ACCOUNT, "+972-3-5555-555", time.time(), 600), key)
    ext_client = Client(emu.url, lp_token(emu.url, external=external))
    assert anon_client.wait_close()[0] == 4407
    assert ext_client.wait_close()[0] == 4401
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["sockets"]["closed_by_server"] == {"4407": 1, "4401": 1}


def test_publish_and_subscriptions(emu) -> None:
    token = lp_token(emu.url)
    client = Client(emu.url, token)
    watcher = Client(emu.url, token)  # a second socket of the same consumer
    sub = watcher.request("cqm.SubscribeExConversations", {"minLastUpdatedTime": 0, "convState": ["OPEN", "CLOSE"]})
    assert sub["code"] == 200 and sub["type"] == "cqm.SubscribeExConversationsResponse"
    sub_id = sub["body"]["subscriptionId"]
    first = watcher.recv_json()  # the subscription's first notification: the state now, nothing yet
    assert first["type"] == "cqm.ExConversationChangeNotification" and first["body"]["changes"] == []
    conv = client.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    note = watcher.recv_json()
    assert note["kind"] == "notification" and note["type"] == "cqm.ExConversationChangeNotification"
    assert note["body"]["subscriptionId"] == sub_id
    change = note["body"]["changes"][0]
    assert change["type"] == "UPSERT" and change["result"]["convId"] == conv
    assert change["result"]["conversationDetails"]["state"] == "OPEN"

    events = client.request("ms.SubscribeMessagingEvents", {"fromSeq": 0, "dialogId": conv})
    assert events["code"] == 200 and events["type"] == "GenericSubscribeResponse"
    text = {"dialogId": conv, "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hi there"}}
    pub = client.request("ms.PublishEvent", text)
    assert pub["code"] == 200 and pub["type"] == "ms.PublishEventResponse" and pub["body"]["sequence"] == 0
    note = client.notes.pop() if client.notes else client.recv_json()
    assert note["type"] == "ms.MessagingEventNotification"
    assert note["body"]["changes"][0]["event"]["message"] == "hi there"
    accept = {"dialogId": conv, "event": {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0]}}
    assert client.request("ms.PublishEvent", accept)["body"]["sequence"] == 1
    assert client.request("ms.PublishEvent", {"dialogId": "nope", "event": {"type": "ContentEvent"}})["code"] == 404
    assert client.request("ms.PublishEvent", {"dialogId": conv})["code"] == 400

    assert client.request("cm.UpdateConversationField", close_body(conv))["code"] == 200
    closing = watcher.recv_json()
    assert closing["body"]["changes"][0]["result"]["conversationDetails"]["state"] == "CLOSE"
    assert client.request("ms.PublishEvent", text)["code"] == 400  # closed conversation
    assert watcher.request("cqm.UnsubscribeExConversations", {"subscriptionId": sub_id})["code"] == 200
    assert watcher.request("cqm.UnsubscribeExConversations", {"subscriptionId": sub_id})["code"] == 404
    # a new subscriber gets existing conversations pushed at once
    late = watcher.request("cqm.SubscribeExConversations", {"convState": ["CLOSE"]})
    pushed = watcher.recv_json()
    assert pushed["body"]["subscriptionId"] == late["body"]["subscriptionId"]
    assert pushed["body"]["changes"][0]["result"]["convId"] == conv
    client.close()
    watcher.close()
