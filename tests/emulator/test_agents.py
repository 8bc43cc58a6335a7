"""The emulated agent side: agents that join, read, type and reply; a bounded pool and its queue; the ledger.

A real emulator on loopback (both server paths), driven by websocket-client. Waits are on frames
(each ``recv`` blocks until the emulator sends one) or on the ledger (polled), never on sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from harness.emulator.ledger import merge_snapshots
from tests.emulator.helpers import SCHEMAS, Client, close_body, lp_token, schema_check

EX = "cqm.ExConversationChangeNotification"
MS = "ms.MessagingEventNotification"
DELAY_MS = 150


@pytest.fixture(scope="module")
def validate() -> Any:
    if not (SCHEMAS / "ws" / "consumerNotifications.json").is_file():
        pytest.skip(f"LivePerson's schemas are not at {SCHEMAS}")
    return schema_check()


def note(client: Client, type_: str) -> dict[str, Any]:
    """The next notification of ``type_`` (kept ones first; others of another type are dropped)."""
    while True:
        msg = client.notes.pop(0) if client.notes else client.recv_json()
        if msg.get("kind") == "notification" and msg["type"] == type_:
            return msg


def changes(client: Client, type_: str = MS) -> list[dict[str, Any]]:
    return note(client, type_)["body"]["changes"]


def text(message: str) -> dict[str, Any]:
    return {"type": "ContentEvent", "contentType": "text/plain", "message": message}


def start_talk(url: str) -> tuple[Client, str]:
    """A consumer subscribed to its conversations and its new conversation's events."""
    client = Client(url, lp_token(url))
    client.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    assert note(client, EX)["body"]["changes"] == []
    conv = client.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
    assert note(client, EX)["body"]["changes"][0]["result"]["conversationDetails"]["state"] == "OPEN"
    client.request("ms.SubscribeMessagingEvents", {"dialogId": conv, "fromSeq": 0})
    return client, conv


def agents_of(change: dict[str, Any]) -> list[str]:
    people = change["result"]["conversationDetails"]["participants"]
    return [p["id"] for p in people if p["role"] == "ASSIGNED_AGENT"]


def test_an_agent_joins_reads_types_and_replies_after_the_delay(emulator, validate) -> None:
    emu = emulator("--agents", "2", "--agent-reply-delay", str(DELAY_MS), "--agent-typing")
    client, conv = start_talk(emu.url)
    join = note(client, EX)
    validate("aam/subscribeExConversationsNotification.json", join["body"])
    (agent,) = agents_of(join["body"]["changes"][0])
    assert join["body"]["changes"][0]["result"]["conversationDetails"]["participantsPId"]["ASSIGNED_AGENT"] == [agent]

    sent_at = time.monotonic()
    assert client.request("ms.PublishEvent", {"dialogId": conv, "event": text("hello")})["body"] == {"sequence": 0}
    echo = changes(client)
    assert echo[0]["originatorMetadata"]["role"] == "CONSUMER"
    read = note(client, MS)
    seen = read["body"]["changes"]
    assert [(c["event"]["type"], c["event"].get("status"), c.get("sequence")) for c in seen] == [
        ("AcceptStatusEvent", "ACCEPT", 1),
        ("AcceptStatusEvent", "READ", 2),
        ("ChatStateEvent", None, None),
    ]
    assert all(c["originatorMetadata"] == {"id": agent, "role": "ASSIGNED_AGENT"} for c in seen)
    assert seen[0]["event"]["sequenceList"] == [0] and seen[2]["event"]["chatState"] == "COMPOSING"
    validate("ms/AcceptStatusEvent.json", seen[0]["event"])
    validate("ms/ChatStateEvent.json", seen[2]["event"])
    (reply,) = changes(client)
    waited_ms = (time.monotonic() - sent_at) * 1000
    assert reply["event"]["type"] == "ContentEvent" and reply["sequence"] == 3 and reply["originatorId"] == agent
    assert waited_ms >= DELAY_MS
    validate("ms/messagingEventNotification.json", {"changes": [reply]})

    # the consumer's receipts for the reply are counted as the consumer's
    for status in ("ACCEPT", "READ"):
        receipt = {"type": "AcceptStatusEvent", "status": status, "sequenceList": [3]}
        assert client.request("ms.PublishEvent", {"dialogId": conv, "event": receipt})["code"] == 200
    ledger = emu.wait_until(lambda led: led["messages"]["consumer"]["receipts"].get("READ") == 1)
    assert ledger["messages"] == {
        "consumer": {"content": 1, "receipts": {"ACCEPT": 1, "READ": 1}, "typing": 0, "other": 0},
        "agent": {"content": 1, "receipts": {"ACCEPT": 1, "READ": 1}, "typing": 1, "other": 0},
    }
    agents = ledger["agents"]
    assert (agents["agents"], agents["slots"], agents["busy"], agents["assigned"]) == (2, 2, 1, 1)
    replies = agents["replies"]
    assert (replies["due"], replies["sent"], replies["declined"], replies["cancelled"]) == (1, 1, 0, 0)
    assert replies["delay_ms"]["max"] == DELAY_MS and DELAY_MS <= replies["latency_ms"]["max"] <= waited_ms + 1
    assert agents["queue"]["wait_ms"]["count"] == 1 and agents["queue"]["entered"] == 0

    # a new subscription replays the transcript with the agent's events, without the typing
    assert [c["sequence"] for c in changes(client) + changes(client)] == [4, 5]  # the receipts' echoes
    client.request("ms.SubscribeMessagingEvents", {"dialogId": conv, "fromSeq": 1})
    replay = changes(client)
    assert [(c["sequence"], c["originatorMetadata"]["role"]) for c in replay] == [
        (1, "ASSIGNED_AGENT"),
        (2, "ASSIGNED_AGENT"),
        (3, "ASSIGNED_AGENT"),
        (4, "CONSUMER"),
        (5, "CONSUMER"),
    ]
    assert client.request("cm.UpdateConversationField", close_body(conv))["code"] == 200
    ledger = emu.wait_until(lambda led: led["agents"]["busy"] == 0)
    assert ledger["agents"]["released"] == 1 and emu.health()["held"]["agent_conversations"] == 0
    client.close()


def test_replies_come_in_order_one_per_message(emulator) -> None:
    emu = emulator("--agents", "1", "--agent-reply-delay", "20+uniform:60", "--seed", "3")
    client, conv = start_talk(emu.url)
    seqs = [
        client.request("ms.PublishEvent", {"dialogId": conv, "event": text(f"m{i}")})["body"]["sequence"]
        for i in range(5)
    ]
    ledger = emu.wait_until(lambda led: led["agents"]["replies"]["sent"] == 5)
    agent_content = []
    while len(agent_content) < 5:
        for change in changes(client):
            if change["originatorMetadata"]["role"] == "ASSIGNED_AGENT" and change["event"]["type"] == "ContentEvent":
                agent_content.append(change["event"]["message"])
    assert agent_content == [f"reply to message {s}" for s in seqs]  # whatever the drawn delays, in order
    assert ledger["messages"]["agent"]["content"] == ledger["messages"]["consumer"]["content"] == 5
    client.close()


def test_conversations_beyond_the_agents_wait_in_a_queue_first_come_first_served(emulator, validate) -> None:
    emu = emulator("--agents", "1", "--agent-reply-delay", "0")
    first, first_conv = start_talk(emu.url)
    note(first, EX)  # the agent joined
    second, second_conv = start_talk(emu.url)
    third, third_conv = start_talk(emu.url)
    ledger = emu.ledger()["agents"]
    assert ledger["queue"]["now"] == ledger["queue"]["peak"] == 2 and ledger["busy"] == 1, ledger
    # the second consumer writes while it waits: nobody reads it yet
    second.request("ms.PublishEvent", {"dialogId": second_conv, "event": text("anyone there?")})
    assert changes(second)[0]["originatorMetadata"]["role"] == "CONSUMER"
    # the third gives up while waiting: it leaves the queue
    third.request("cm.UpdateConversationField", close_body(third_conv))
    # the first closes: its agent takes the oldest waiting conversation, reads what came meanwhile, answers it
    first.request("cm.UpdateConversationField", close_body(first_conv))
    join = note(second, EX)["body"]
    validate("aam/subscribeExConversationsNotification.json", join)
    assert len(agents_of(join["changes"][0])) == 1
    read = changes(second)
    assert [(c["event"]["status"], c["event"]["sequenceList"]) for c in read] == [("ACCEPT", [0]), ("READ", [0])]
    (reply,) = changes(second)
    assert reply["event"]["message"] == "reply to message 0"
    ledger = emu.ledger()["agents"]
    queue = ledger["queue"]
    assert (queue["now"], queue["peak"], queue["entered"], queue["left"], queue["abandoned"]) == (0, 2, 2, 1, 1)
    assert queue["wait_ms"]["count"] == 2 and queue["wait_ms"]["max"] > 0  # the first at once, the second after
    assert (ledger["assigned"], ledger["released"], ledger["busy"]) == (2, 1, 1)
    for client in (first, second, third):
        client.close()


def test_time_in_queue_grows_with_the_load(emulator) -> None:
    emu = emulator("--agents", "1", "--agent-reply-delay", "0")
    clients = [start_talk(emu.url) for _ in range(4)]
    for client, conv in clients:  # each conversation ends as soon as an agent joined it
        if agents_of(note(client, EX)["body"]["changes"][0]):
            client.request("cm.UpdateConversationField", close_body(conv))
    ledger = emu.wait_until(lambda led: led["agents"]["assigned"] == 4)["agents"]
    waits = ledger["queue"]["wait_ms"]
    assert waits["count"] == 4 and waits["max"] > 0 and ledger["queue"]["peak"] == 3
    for client, _ in clients:
        client.close()


def test_the_reply_probability_declines_and_a_close_cancels_what_is_due(emulator) -> None:
    emu = emulator("--agents", "1", "--agent-reply-probability", "0")
    client, conv = start_talk(emu.url)
    client.request("ms.PublishEvent", {"dialogId": conv, "event": text("hello?")})
    ledger = emu.wait_until(lambda led: led["agents"]["replies"]["declined"] == 1)
    assert ledger["agents"]["replies"]["due"] == ledger["agents"]["replies"]["sent"] == 0
    assert ledger["messages"]["agent"]["receipts"] == {"ACCEPT": 1, "READ": 1}  # read, not answered
    emu.set_agents({"agents": 1, "agent-reply-delay": "60s"})
    client.request("ms.PublishEvent", {"dialogId": conv, "event": text("still there?")})
    emu.wait_until(lambda led: led["agents"]["replies"]["due"] == 1)
    client.request("cm.UpdateConversationField", close_body(conv))
    replies = emu.wait_until(lambda led: led["agents"]["replies"]["cancelled"] == 1)["agents"]["replies"]
    assert replies["sent"] == 0
    client.close()


def test_agents_are_set_through_the_admin_api(emulator) -> None:
    emu = emulator()
    assert emu.get_agents() == {
        "agents": 0,
        "agent-skill": [],
        "agent-conversations": 1,
        "agent-reply-delay": "1000",
        "agent-reply-probability": 1.0,
        "agent-typing": False,
    }
    client, conv = start_talk(emu.url)  # agents off: nobody joins, nobody reads
    client.request("ms.PublishEvent", {"dialogId": conv, "event": text("hello")})
    assert changes(client)[0]["originatorMetadata"]["role"] == "CONSUMER"
    assert emu.ledger()["agents"]["unrouted"] == 1 and emu.ledger()["agents"]["queue"]["entered"] == 0
    for bad in ({"agents": -1}, {"agents": "many"}, {"agent-reply-delay": "soon"}, {"no-such": 1}, [1]):
        with pytest.raises(Exception, match="400"):
            emu.set_agents(bad)  # type: ignore[arg-type]
    shown = emu.set_agents({"agents": 3, "agent-skill": ["vip=2"], "agent_reply_delay": "5+uniform:5"})
    assert shown["agents"] == 3 and shown["agent-skill"] == ["vip=2"] and shown["agent-reply-delay"] == "5+uniform:5"
    assert emu.get_agents() == shown
    assert emu.ledger()["agents"]["skills"]["vip"]["agents"] == 2 and emu.ledger()["agents"]["agents"] == 5
    # a conversation opened now gets one (the one opened while there were none stays unanswered)
    other, _ = start_talk(emu.url)
    assert len(agents_of(note(other, EX)["body"]["changes"][0])) == 1
    assert emu.set_agents({}) == {**emu.get_agents(), "agents": 0}
    for c in (client, other):
        c.close()


def test_removing_agents_drops_the_queue_and_adding_them_drains_it(emulator) -> None:
    emu = emulator("--agents", "1", "--agent-reply-delay", "0")
    first, _ = start_talk(emu.url)
    waiting = [start_talk(emu.url) for _ in range(2)]
    assert emu.ledger()["agents"]["queue"]["now"] == 2
    emu.set_agents({"agents": 3, "agent-reply-delay": "0"})  # two more agents: both waiting ones are taken
    for client, _ in waiting:
        assert len(agents_of(note(client, EX)["body"]["changes"][0])) == 1
    assert emu.ledger()["agents"]["busy"] == 3
    late = [start_talk(emu.url) for _ in range(1)]
    assert emu.ledger()["agents"]["queue"]["now"] == 1
    emu.set_agents({})  # nobody left: the waiting one leaves the queue; the busy ones finish
    ledger = emu.ledger()["agents"]
    assert ledger["queue"]["now"] == 0 and ledger["queue"]["dropped"] == 1 and ledger["busy"] == 3
    for client, _ in [*waiting, *late, (first, "")]:
        client.close()


def test_agent_options_come_from_a_config_file_too(emulator, tmp_path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('agents = 4\nagent-skill = ["sales=2"]\nagent-conversations = 2\nagent-reply-delay = "10"\n')
    emu = emulator("--config", str(path))
    assert emu.config()["agents"] == 4 and emu.config()["agent-skill"] == ["sales=2"]
    ledger = emu.ledger()["agents"]
    assert (ledger["agents"], ledger["slots"]) == (6, 12)


def test_workers_split_the_agents_and_the_ledger_sums_them(emulator) -> None:
    emu = emulator("--processes", "2", "--agents", "3", "--agent-skill", "sales=2")
    ledger = emu.ledger()["agents"]
    assert (ledger["agents"], ledger["slots"]) == (5, 5)
    assert ledger["skills"]["default"]["agents"] == 3 and ledger["skills"]["sales"]["agents"] == 2
    done = subprocess.run(
        [sys.executable, "-m", "harness.emulator", "--processes", "2", "--agents", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "at least one per worker" in done.stderr


def test_agent_sections_of_worker_ledgers_add_up() -> None:
    a = {"agents": 1, "queue": {"now": 1, "wait_ms": {"count": 1, "mean": 2.0, "p50": 2.0, "p90": 2.0, "p95": 2.0,
         "p99": 2.0, "p99_9": 2.0, "max": 2.0, "histogram_ms": {"2": 1}, "total_ms": 2.0}}}  # fmt: skip
    b = json.loads(json.dumps(a).replace("2.0", "4.0").replace('"2"', '"4"'))
    snaps = [
        {"endpoints": {}, "sockets": {}, "conversations": {}, "pings": {}, "identities": {}, "since": 1, "agents": a},
        {"endpoints": {}, "sockets": {}, "conversations": {}, "pings": {}, "identities": {}, "since": 2, "agents": b},
    ]
    total = merge_snapshots(snaps)["agents"]
    assert total["agents"] == 2 and total["queue"]["now"] == 2
    wait = total["queue"]["wait_ms"]
    assert (wait["count"], wait["mean"], wait["max"], wait["histogram_ms"]) == (2, 3.0, 4.0, {"2": 1, "4": 1})
