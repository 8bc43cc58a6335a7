"""What real LivePerson consumer clients rely on, checked with plain clients that are not the project's own.

Each point was seen with an unmodified LivePerson consumer client or a frame from LivePerson's
docs (docs/emulator.md, "Fidelity"). The socket side is driven by websocket-client's
``create_connection`` and raw JSON, the HTTP side by ``requests``; every frame the emulator sends
here is validated against LivePerson's published schemas where one exists.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from harness.protocol import tokens
from tests.emulator.helpers import ACCOUNT, SCHEMAS, schema_check

BASE_HEADERS = {"Content-Type": "application/json"}
CHAT_STATE = "ChatStateEvent"


@pytest.fixture(scope="module")
def validate() -> Any:
    if not (SCHEMAS / "ws" / "consumerNotifications.json").is_file():
        pytest.skip(f"LivePerson's schemas are not at {SCHEMAS}")
    return schema_check()


def consumer_token(url: str, account: str = ACCOUNT) -> str:
    """The tutorial's two calls, as curl would make them."""
    anon = requests.post(f"{url}/api/account/{account}/anonymous/authorize", headers=BASE_HEADERS, timeout=5)
    assert anon.status_code == 200, anon.text
    lp = requests.post(f"{url}/api/account/{account}/authenticate", json={"authCode": anon.json()["jwt"]}, timeout=5)
    assert lp.status_code == 200, lp.text
    return lp.json()["jwt"]


class Raw:
    """One socket: JSON frames in and out, nothing else (requests numbered from 1, responses matched by reqId)."""

    def __init__(self, url: str, token: str, account: str = ACCOUNT) -> None:
        ws_url = url.replace("http://", "ws://") + f"/ws_api/account/{account}/messaging/consumer?v=3"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: jwt {token}"], timeout=5)
        self.sent = 0
        self.notes: list[dict[str, Any]] = []

    def request(self, type_: str, body: Any = None) -> dict[str, Any]:
        self.sent += 1
        frame: dict[str, Any] = {"kind": "req", "id": str(self.sent), "type": type_}
        if body is not None:
            frame["body"] = body
        self.ws.send(json.dumps(frame))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("kind") == "resp" and msg.get("reqId") == str(self.sent):
                return msg
            self.notes.append(msg)

    def note(self, type_: str | None = None) -> dict[str, Any]:
        """The next notification (of ``type_``), kept ones first."""
        while True:
            msg = self.notes.pop(0) if self.notes else json.loads(self.ws.recv())
            if msg.get("kind") == "notification" and (type_ is None or msg["type"] == type_):
                return msg

    def close(self) -> None:
        self.ws.close()


EX = "cqm.ExConversationChangeNotification"
MS = "ms.MessagingEventNotification"


@pytest.fixture
def raw(emu) -> Iterator[Any]:
    opened: list[Raw] = []

    def connect(token: str | None = None) -> Raw:
        sock = Raw(emu.url, token or consumer_token(emu.url))
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


def text(message: str) -> dict[str, Any]:
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}


def close_main_dialog(conv: str) -> dict[str, Any]:
    """The multi-dialog close from LivePerson's PCS tutorial, conversationField sent bare."""
    dialog = {"dialogId": conv, "state": "CLOSE", "closedCause": "Closed by consumer"}
    return {"conversationId": conv, "conversationField": {"field": "DialogChange", "type": "UPDATE", "dialog": dialog}}


# ---------------------------------------------------------------------------- the socket
def test_the_first_conversation_notification_comes_at_once_with_the_state_now(emu, raw, validate) -> None:
    token = consumer_token(emu.url)
    sock = raw(token)
    sub = sock.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    first = sock.note(EX)  # nothing else was sent: it came by itself
    assert first["body"] == {"subscriptionId": sub["body"]["subscriptionId"], "changes": []}
    validate("aam/subscribeExConversationsNotification.json", first["body"])
    conv = sock.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    # a client that reconnects finds its OPEN conversation in the first notification of a new subscription
    again = raw(token)
    again.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    found = again.note(EX)
    assert [(c["type"], c["result"]["convId"]) for c in found["body"]["changes"]] == [("UPSERT", conv)]
    validate("ws/consumerNotifications.json", found)


def test_a_close_is_a_delete_for_subscribers_of_open_conversations(emu, raw, validate) -> None:
    token = consumer_token(emu.url)
    sock, watcher_open, watcher_all = raw(token), raw(token), raw(token)
    open_sub = watcher_open.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})["body"]["subscriptionId"]
    watcher_all.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
    for watcher in (watcher_open, watcher_all):
        assert watcher.note(EX)["body"]["changes"] == []
    conv = sock.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    for watcher in (watcher_open, watcher_all):
        assert watcher.note(EX)["body"]["changes"][0]["type"] == "UPSERT"
    closed = sock.request("cm.UpdateConversationField", close_main_dialog(conv))
    assert closed["code"] == 200
    gone = watcher_open.note(EX)["body"]
    assert gone["subscriptionId"] == open_sub
    assert [(c["type"], c["result"]["convId"]) for c in gone["changes"]] == [("DELETE", conv)]
    assert gone["changes"][0]["result"]["conversationDetails"]["state"] == "CLOSE"
    validate("aam/subscribeExConversationsNotification.json", gone)
    upsert = watcher_all.note(EX)["body"]["changes"][0]  # a filter with CLOSE sees the state change itself
    assert upsert["type"] == "UPSERT" and upsert["result"]["conversationDetails"]["state"] == "CLOSE"


def test_a_dialog_change_close_closes_the_conversation(emu, raw) -> None:
    sock = raw()
    conv = sock.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    assert sock.request("cm.UpdateConversationField", close_main_dialog(conv))["code"] == 200
    counts = emu.ledger()["conversations"]
    assert (counts["opened"], counts["closed"]) == (1, 1)
    assert sock.request("ms.PublishEvent", {"dialogId": conv, "event": text("late")})["code"] == 400
    # the consumer can open a new one: the old one is closed, not merely answered 200
    assert sock.request("cm.ConsumerRequestConversation")["code"] == 200
    other = {
        **close_main_dialog(conv),
        "conversationField": {
            "field": "DialogChange",
            "type": "UPDATE",
            "dialog": {"dialogId": "post-survey", "state": "CLOSE"},
        },
    }
    assert sock.request("cm.UpdateConversationField", other)["code"] == 200  # another dialog: nothing to close
    assert emu.ledger()["conversations"]["closed"] == 1


def test_messaging_changes_name_their_originator_and_conversation(emu, raw, validate) -> None:
    sock = raw()
    conv = sock.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    sock.request("ms.SubscribeMessagingEvents", {"dialogId": conv, "fromSeq": 0})
    typing = sock.request(
        "ms.PublishEvent", {"dialogId": conv, "event": {"type": CHAT_STATE, "chatState": "COMPOSING"}}
    )
    assert typing["code"] == 200
    hello = sock.request("ms.PublishEvent", {"dialogId": conv, "event": text("hello")})
    assert hello["body"] == {"sequence": 0}  # the chat state took no sequence number
    validate("ms/PublishEventSuccess.json", hello)
    seen = [sock.note(MS) for _ in range(2)]
    changes = [change for note in seen for change in note["body"]["changes"]]
    for change in changes:
        assert change["originatorMetadata"] == {"id": change["originatorId"], "role": "CONSUMER"}, change
        assert change["conversationId"] == change["dialogId"] == conv
    chat, content = changes
    assert chat["event"]["type"] == CHAT_STATE and "sequence" not in chat
    # the published schema requires a sequence on every change; LivePerson's typing examples carry none
    problems = validate.problems("ms/messagingEventNotification.json", seen[0]["body"])
    assert problems == ["'sequence' is a required property"], problems
    validate("ms/messagingEventNotification.json", seen[1]["body"])
    # a new subscription replays the transcript: the message, not the typing
    sock.request("ms.SubscribeMessagingEvents", {"dialogId": conv, "fromSeq": 0})
    replay = sock.note(MS)["body"]["changes"]
    assert [c["event"]["type"] for c in replay] == ["ContentEvent"] and replay[0]["sequence"] == 0


def test_conversation_details_carry_brand_stage_dialogs_skill_and_ttr(emu, raw, validate) -> None:
    sock = raw()
    sock.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
    sock.note(EX)
    body = {"brandId": ACCOUNT, "skillId": "2736637412", "ttrDefName": "PRIORITIZED", "channelType": "MESSAGING"}
    before = int(time.time() * 1000)
    conv = sock.request("cm.ConsumerRequestConversation", body)["body"]["conversationId"]
    note = sock.note(EX)["body"]
    validate("aam/subscribeExConversationsNotification.json", note)
    result = note["changes"][0]["result"]
    details = result["conversationDetails"]
    assert (details["brandId"], details["stage"], details["state"], details["skillId"]) == (
        ACCOUNT,
        "OPEN",
        "OPEN",
        "2736637412",
    )
    assert details["ttr"] == {"ttrType": "PRIORITIZED", "value": 600}
    assert before + 600_000 <= result["effectiveTTR"] <= int(time.time() * 1000) + 600_000
    (dialog,) = details["dialogs"]
    assert (dialog["dialogId"], dialog["dialogType"], dialog["channelType"], dialog["state"]) == (
        conv,
        "MAIN",
        "MESSAGING",
        "OPEN",
    )
    # a TTR update changes what the details say; a close ends the awaited answer
    ttr = {"conversationId": conv, "conversationField": [{"field": "TTRField", "ttrType": "URGENT", "value": 120}]}
    assert sock.request("cm.UpdateConversationField", ttr)["code"] == 200
    assert sock.note(EX)["body"]["changes"][0]["result"]["conversationDetails"]["ttr"] == {
        "ttrType": "URGENT",
        "value": 120,
    }
    sock.request("cm.UpdateConversationField", close_main_dialog(conv))
    closed = sock.note(EX)["body"]["changes"][0]["result"]
    assert closed["effectiveTTR"] == -1 and closed["conversationDetails"]["stage"] == "CLOSE"
    assert closed["conversationDetails"]["dialogs"][0]["state"] == "CLOSE"
    plain = raw()
    plain.request("cm.ConsumerRequestConversation")
    plain.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    assert plain.note(EX)["body"]["changes"][0]["result"]["conversationDetails"]["skillId"] == "-1"


def test_a_brand_id_of_another_account_is_refused(emu, raw) -> None:
    sock = raw()
    refused = sock.request("cm.ConsumerRequestConversation", {"brandId": "someone-else"})
    assert refused["code"] == 400 and "brandId" in refused["body"]
    assert emu.ledger()["conversations"]["opened"] == 0
    assert sock.request("cm.ConsumerRequestConversation", {"brandId": ACCOUNT})["code"] == 200


def _assigned(change: dict[str, Any]) -> list[str]:
    people = change["result"]["conversationDetails"]["participants"]
    return [p["id"] for p in people if p["role"] == "ASSIGNED_AGENT"]


def test_a_skill_id_routes_to_that_skills_agents(emulator) -> None:
    emu = emulator("--agents", "1", "--agent-skill", "sales=1", "--agent-reply-delay", "0")
    sockets: dict[str | None, Raw] = {}
    joined: dict[str | None, list[str]] = {}
    for skill in ("sales", None, "no-such-skill"):
        sock = sockets[skill] = Raw(emu.url, consumer_token(emu.url))
        sock.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
        sock.note(EX)
        sock.request("cm.ConsumerRequestConversation", {"skillId": skill} if skill else None)
        assert _assigned(sock.note(EX)["body"]["changes"][0]) == []  # opened: nobody there yet
        if skill != "no-such-skill":
            joined[skill] = _assigned(sock.note(EX)["body"]["changes"][0])  # then its agent joins
    # the sales agent took the sales conversation, the default pool's one agent the one without a skill;
    # a skill with no agents of its own goes to the default pool, whose agent is busy: it waits
    assert len(joined["sales"]) == len(joined[None]) == 1 and joined["sales"] != joined[None]
    agents = emu.ledger()["agents"]
    assert agents["skills"]["sales"] == {"agents": 1, "slots": 1, "busy": 1, "queued": 0}
    assert agents["skills"]["default"] == {"agents": 1, "slots": 1, "busy": 1, "queued": 1}
    for sock in sockets.values():
        sock.close()


# ---------------------------------------------------------------------------- HTTP
def test_an_external_token_without_aud_is_accepted_when_iss_iat_exp_are_valid(emu, tmp_path) -> None:
    brand = tokens.load_private_key(tokens.TUTORIAL_PRIVATE_KEY_PEM)
    now = int(time.time())
    claims = {"sub": "+972-3-5555-555", "iss": "https://brand.example", "iat": now, "exp": now + 600}
    answer = requests.post(
        f"{emu.url}/api/account/{ACCOUNT}/authenticate", json={"authCode": tokens.sign(claims, brand)}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    assert tokens.unverified_claims(answer.json()["jwt"])["aud"] == f"acc:{ACCOUNT}"
    no_iat = {k: v for k, v in claims.items() if k != "iat"}
    refused = requests.post(
        f"{emu.url}/api/account/{ACCOUNT}/authenticate", json={"authCode": tokens.sign(no_iat, brand)}, timeout=5
    )
    assert refused.status_code == 401 and "iat" in refused.json()["message"], refused.text
    other = {**claims, "aud": "acc:another"}
    wrong = requests.post(
        f"{emu.url}/api/account/{ACCOUNT}/authenticate", json={"authCode": tokens.sign(other, brand)}, timeout=5
    )
    assert wrong.status_code == 403  # an aud that is there must still be this account


def test_the_older_csds_path_and_the_jsonp_forms_answer(emu) -> None:
    host = emu.url.split("://", 1)[1]
    one = requests.get(
        f"{emu.url}/csdr/account/{ACCOUNT}/service/asyncMessagingEnt/baseURI.json?version=1.0", timeout=5
    )
    assert one.status_code == 200 and one.json() == {
        "service": "asyncMessagingEnt",
        "account": ACCOUNT,
        "baseURI": host,
    }
    every = requests.get(f"{emu.url}/csdr/account/{ACCOUNT}/service/baseURI.json?version=1.0", timeout=5).json()
    assert {e["service"]: e["baseURI"] for e in every["baseURIs"]}["idp"] == host
    # the Messaging Window SDK: <script src=".../baseURI.lpCsds?version=1.0&cb=domainCallback">
    script = requests.get(
        f"{emu.url}/csdr/account/{ACCOUNT}/service/idp/baseURI.lpCsds?version=1.0&cb=domainCallback", timeout=5
    )
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert script.text.startswith("domainCallback(") and script.text.endswith(");")
    data = json.loads(script.text[len("domainCallback(") : -2])
    assert data["ResultSet"]["lpData"][0]["lpServer"] == host
    listing = requests.get(f"{emu.url}/csdr/account/{ACCOUNT}/service/baseURI.lpCsds?version=1.0&cb=cb1", timeout=5)
    assert json.loads(listing.text[4:-2])["ResultSet"]["lpData"]["baseURIs"][0]["baseURI"] == host
    signup = requests.get(f"{emu.url}/api/account/{ACCOUNT}/signup.jsonp?callback=jsonp_callback_42", timeout=5)
    assert signup.status_code == 200 and signup.text.startswith("jsonp_callback_42(")
    lp = json.loads(signup.text[len("jsonp_callback_42(") : -2])["jwt"]
    Raw(emu.url, lp).close()  # the LP token it carries opens a socket
    for bad in ("alert(1)//", "x;y", ""):
        assert (
            requests.get(
                f"{emu.url}/api/account/{ACCOUNT}/signup.jsonp", params={"callback": bad}, timeout=5
            ).status_code
            == 400
        )
    unknown = requests.get(f"{emu.url}/csdr/account/{ACCOUNT}/service/nope/baseURI.lpCsds?version=1.0&cb=f", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_service"
    ledger = emu.ledger()["endpoints"]
    assert ledger["csds"]["received"] == 5 and ledger["csds"]["errors"] == {"404": 1}
    assert ledger["signup"]["ok"] == 1 and ledger["signup"]["errors"] == {"400": 3}


def test_a_user_profile_is_accepted_and_kept_for_the_consumer(emu, raw, validate) -> None:
    token = consumer_token(emu.url)
    sock = raw(token)
    profile = {"firstName": "Load", "lastName": "Test", "privateData": {"mail": "load@test.example"}}
    answer = sock.request("userprofile.SetUserProfile", profile)
    assert answer["code"] == 200
    validate("infra/stringResp.json", answer)
    kept = raw(token).request("userprofile.GetUserProfile")  # on another socket of the consumer
    assert kept["body"] == profile and kept["type"] == "userprofile.GetUserProfileResponse"
    validate("infra/resp.json", kept)
    assert raw().request("userprofile.GetUserProfile")["body"] == {}  # another consumer
    assert sock.request("userprofile.SetUserProfile", "not an object")["code"] == 400
    assert emu.ledger()["endpoints"]["userprofile.SetUserProfile"]["ok"] == 1


def test_a_per_account_rate_limit_answers_429_with_retry_after(emulator, validate) -> None:
    emu = emulator("--rate-limit", "5")  # a burst of 5, then 5 a second; each account its own bucket
    url = f"{emu.url}/api/account/bursty/anonymous/authorize"
    statuses = [requests.post(url, headers=BASE_HEADERS, timeout=5) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert limited[0].json()["error"] == "too_many_requests"
    assert (
        requests.post(f"{emu.url}/api/account/other/anonymous/authorize", timeout=5).status_code == 200
    )  # per account
    token = consumer_token(emu.url)  # ACCOUNT's bucket: two calls, then the handshake, leave two
    sock = Raw(emu.url, token)
    answers = [sock.request("GetClock") for _ in range(8)]
    codes = [a["code"] for a in answers]
    assert codes[0] == 200 and 429 in codes, codes
    refused = answers[codes.index(429)]
    assert refused["body"].startswith("too many requests: retry after ")
    validate("infra/stringResp.json", refused)
    sock.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as upgrade:  # the handshake is a request too
        Raw(emu.url, token)
    assert upgrade.value.status_code == 429 and int(upgrade.value.resp_headers["retry-after"]) >= 1
    ledger = emu.ledger()
    assert ledger["endpoints"]["anonymous-authorize"]["errors"] == {"429": len(limited)}
    assert ledger["endpoints"]["GetClock"]["errors"] == {"429": codes.count(429)}
    assert ledger["endpoints"]["connect"]["errors"] == {"429": 1}
    assert ledger["rate_limited"] == len(limited) + codes.count(429) + 1


def test_odd_bodies_get_answers_and_keep_the_socket_up(emu, raw) -> None:
    sock = raw()
    odd = {"ttrDefName": [], "skillId": {"a": 1}, "campaignInfo": None}
    conv = sock.request("cm.ConsumerRequestConversation", odd)["body"]["conversationId"]
    assert sock.request("cm.ConsumerRequestConversation", {"brandId": []})["code"] == 400
    for field in ({"field": "TTRField", "ttrType": [], "value": 5}, {"field": "Skill", "skill": 7}, "x", None):
        body = {"conversationId": conv, "conversationField": [field]}
        assert sock.request("cm.UpdateConversationField", body)["code"] == 200
    assert sock.request("userprofile.SetUserProfile", {"blob": "x" * 5000})["code"] == 400
    assert sock.request("GetClock")["code"] == 200
