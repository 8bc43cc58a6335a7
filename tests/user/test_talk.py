"""Consumers that talk, and the consumer session as real clients run it: real locust runs on a real emulator.

Each a short bounded run on loopback. What the summary says is checked against the emulator's
ledger: every ``ms.PublishEvent`` it received is a message, a receipt or a typing state the
summary counts; every ``ms.SubscribeMessagingEvents``, ``GetClock`` and ``InitConnection`` is a
step (or a reconnect's call). The emulator's agents are off unless a test gives it ``--agents``;
with them, what the summary counts is reconciled with the ledger's ``messages`` and ``agents``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from locust import argument_parser

from harness.options import add_arguments
from harness.reports.loading import load_schema
from harness.settings import Settings, SettingsError
from harness.user.metrics import HarnessMetrics, MessageCounts
from harness.webui.view import table_rows
from tests.user.runs import ROOT, LocustRun, run_locust

QUICK = [
    *("-u", "2", "-r", "20", "-t", "3s", "--stop-timeout", "5"),
    *("--lp-request-timeout", "1", "--lp-ping-interval", "0.2", "--lp-pong-timeout", "1"),
    *("--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"),
]
PUBLISH, SUBSCRIBE_EVENTS = "ms.PublishEvent", "ms.SubscribeMessagingEvents"


def received(ledger: dict[str, Any], target: str) -> int:
    return int(ledger["endpoints"].get(target, {}).get("received", 0))


def count(summary: dict[str, Any], step: str, key: str = "count") -> int:
    return int(summary["steps"].get(step, {}).get(key, 0))


def checked(run: LocustRun) -> dict[str, Any]:
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    return summary


def publishes_reconcile(summary: dict[str, Any], ledger: dict[str, Any]) -> None:
    """Every publish the emulator received is a message, a receipt or a typing state the summary counts."""
    messages = summary["messages"]
    ours = count(summary, "publish") + sum(messages["receipts_sent"].values()) + messages["typing_sent"]
    assert ours == received(ledger, PUBLISH), (messages, summary["steps"].get("publish"), ledger["endpoints"])
    assert messages["sent"] == count(summary, "publish") - count(summary, "publish", "failures")
    assert count(summary, "subscribe-messages") == received(ledger, SUBSCRIBE_EVENTS)
    assert ledger["conversations"]["open"] == 0 and ledger["sockets"]["open"] == 0, ledger
    assert summary["conversations"]["left_open"] == 0


# ---------------------------------------------------------------------------- settings
def parse(args: list[str]) -> Settings:
    parser = argument_parser.get_parser()
    add_arguments(parser)
    return Settings.from_options(
        parser.parse_args(["--lp-account", "a", "--lp-idp", "h", "--lp-asyncmessagingent", "h", *args])
    )


def test_talk_settings_default_to_the_silent_tutorial_session() -> None:
    settings = parse([])
    assert (settings.messages, settings.session, settings.auth, settings.keepalive) == (0, "tutorial", "header", "ping")
    assert settings.message_interval.fixed_ms == 1000.0 and settings.reply_timeout_s == 10.0


def test_the_message_interval_takes_a_fixed_time_or_a_distribution_in_seconds() -> None:
    assert parse(["--lp-message-interval", "2"]).message_interval.fixed_ms == 2000.0
    spec = parse(["--lp-message-interval", "1+uniform:2"]).message_interval
    assert (spec.fixed_ms, spec.dist, spec.jitter_ms) == (1000.0, "uniform", 2000.0)
    assert parse(["--lp-message-interval", "300ms"]).message_interval.fixed_ms == 300.0
    with pytest.raises(SettingsError, match="--lp-message-interval 'soon'"):
        parse(["--lp-message-interval", "soon"])
    with pytest.raises(SettingsError, match="--lp-messages"):
        parse(["--lp-messages", "-1"])


def test_chat_conf_is_a_profile_of_the_realistic_session_with_messages() -> None:
    settings = parse(["--config", str(ROOT / "scenarios" / "chat.conf")])
    assert (settings.scenario, settings.session, settings.auth, settings.keepalive) == (
        "chat",
        "realistic",
        "init-connection",
        "getclock",
    )
    assert settings.messages > 0 and settings.typing


def test_the_web_ui_tab_shows_the_messages_of_a_run_that_talks() -> None:
    counts = MessageCounts(sent=5, received=4, replied=4, lost=1, typing_sent=5)
    counts.receipts_sent.update({"ACCEPT": 4, "READ": 4})
    counts.receipts_received.update({"READ": 5})
    health = {"saturated": False, "warning": None, "notes": [], "processes": [], "total": {}}
    view = {"state": "running", "distributed": False, "workers": 0, "users": 1, "target_users": 1, "loadgen": health}
    rows = {(r["group"], r["measure"]): r for r in table_rows({**view, "messages": counts.to_dict()})}
    assert rows["messages", "sent"]["value"] == 5 and rows["messages", "lost"]["value"] == 1
    assert rows["messages", "replied"]["value"] == rows["messages", "received"]["value"] == 4
    assert (
        rows["messages", "receipts sent"]["value"] == 8 and "ACCEPT ×4" in rows["messages", "receipts sent"]["detail"]
    )
    assert rows["messages", "receipts received"]["value"] == 5
    assert rows["messages", "typing"]["value"] == 5
    silent = table_rows({**view, "messages": MessageCounts().to_dict()})
    assert not any(r["group"] == "messages" for r in silent)  # a silent run's tab is as it was


def test_workers_messages_add_up_on_the_master() -> None:
    part = HarnessMetrics()
    part.messages.sent, part.messages.lost = 3, 1
    part.messages.receipts_sent["READ"] += 2
    older = part.to_dict()
    del older["messages"]  # a worker of a version that did not count them
    total = HarnessMetrics.sum([part.to_dict(), part.to_dict(), older])["messages"]
    assert (total["sent"], total["lost"], total["receipts_sent"]) == (6, 2, {"READ": 4})


# ---------------------------------------------------------------------------- against today's emulator
def test_messages_nobody_answers_fail_the_session_with_no_reply(emulator, tmp_path: Path) -> None:
    emu = emulator("--agents", "0")  # nobody answers (the default, said out loud)
    args = ["--lp-hold", "0", "--lp-messages", "2", "--lp-message-interval", "0.1", "--lp-reply-timeout", "0.4"]
    gate = ["--lp-threshold", "message-round-trip:p95<300", "--lp-threshold", "phase:socket:category['no reply']<1"]
    gate += ["--lp-threshold", "messages:lost_ratio<1%"]
    # header-less: the cleanup of the failed sessions connects that way too
    run = run_locust([*QUICK, *args, *gate, "--lp-typing", "--lp-auth", "init-connection"], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    socket, messages = summary["phases"]["socket"], summary["messages"]
    assert socket["failures"] > 0 and socket["categories"] == {"no reply": socket["failures"]}, socket
    # each failed session published both messages (0.1 s apart) before the first one's 0.4 s ran out
    assert messages["lost"] == 2 * socket["failures"] and messages["replied"] == messages["received"] == 0
    trip = summary["steps"]["message-round-trip"]
    assert trip["failures"] == trip["count"] == socket["failures"] and trip["min_ms"] >= 400, trip
    assert messages["typing_sent"] == count(summary, "publish")  # a COMPOSING before each message
    assert "first-agent-reply" not in summary["steps"]
    publishes_reconcile(summary, ledger)
    assert summary["conversations"]["closed_by_cleanup"] == socket["failures"]  # left to the cleanup, closed
    cleanup_connects = summary["conversations"]["cleanup"]["calls"].get("connect", 0)
    assert received(ledger, "InitConnection") == count(summary, "connect") + cleanup_connects
    # the gate knows the new step and the new category
    results = {r["rule"]: r for r in summary["thresholds"]["rules"]}
    assert not summary["thresholds"]["passed"] and run.returncode == 3, results
    assert {r["status"] for r in results.values()} == {"fail"}, results
    # every message lost but those the run's stop cut short (neither lost nor replied)
    assert results["messages: lost_ratio < 1%"]["value"] == messages["lost"] / messages["sent"] > 0.5
    assert "messages: " in run.output and " lost;" in run.output


def test_header_less_sockets_kept_alive_by_getclock(emulator, tmp_path: Path) -> None:
    emu = emulator()
    args = ["--lp-auth", "init-connection", "--lp-keepalive", "getclock", "--lp-getclock-interval", "0.2"]
    run = run_locust([*QUICK, *args, "--lp-hold", "1"], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    assert summary["phases"]["socket"]["failures"] == 0, summary["phases"]
    assert count(summary, "connect") == received(ledger, "InitConnection") == received(ledger, "connect") > 0
    assert count(summary, "get-clock") == received(ledger, "GetClock") >= 4, summary["steps"]
    assert count(summary, "get-clock", "failures") == 0
    assert summary["pings"]["sent"] == 0 and "ping" not in summary["steps"]  # no ping frames at all
    assert count(summary, "hold") > 0 and ledger["conversations"]["open"] == 0


def test_a_drop_mid_talk_carries_the_talk_on_to_the_new_socket(emulator, tmp_path: Path) -> None:
    # Every socket is closed 0.4 s after it opened. Each session publishes 4 messages 0.25 s apart, so at
    # least two go out on a socket that replaced the first; nobody answers, so each session ends with
    # "no reply" 1.2 s after its first message, with all four unanswered.
    emu = emulator("--fault", "hold=close:4401,after=0.4")  # no agents: nobody answers
    reconnect = ["--lp-on-drop", "reconnect", "--lp-reconnect-delay", "0.05"]
    args = ["--lp-hold", "0", "--lp-messages", "4", "--lp-message-interval", "0.25", "--lp-reply-timeout", "1.2"]
    run = run_locust([*QUICK, "-t", "4s", *reconnect, *args], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    drops, socket, messages = summary["reconnect"], summary["phases"]["socket"], summary["messages"]
    assert drops["drops"] == drops["recovered"] > 0 and drops["lost"] == 0, drops
    no_reply = socket["categories"].get("no reply", 0)
    assert no_reply > 0, socket
    # a session the run's stop ended may have closed its conversation just as its socket was closed
    assert set(socket["categories"]) <= {"no reply", "close 4401"}, socket
    # every message of a "no reply" session was published, across its sockets, and waited in vain
    assert messages["lost"] == 4 * no_reply and messages["sent"] >= messages["lost"], messages
    assert messages["sent"] == count(summary, "publish") and count(summary, "publish", "failures") == 0
    # the talk followed its conversation on each new socket: one subscription per socket that held it
    assert count(summary, "subscribe-messages") == socket["sessions"] + drops["recovered"]
    publishes_reconcile(summary, ledger)


def test_the_realistic_session_carries_on_an_open_conversation(emulator, tmp_path: Path) -> None:
    # every close fails (500), so each user's conversation stays open (no cleanup) for its next session
    emu = emulator("--fault", "cm.UpdateConversationField=code:500")
    args = ["--lp-session", "realistic", "--lp-consumer", "returning", "--lp-cleanup-attempts", "0", "--lp-hold", "0.2"]
    run = run_locust([*QUICK, *args], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    conversations = summary["conversations"]
    users = 2
    assert count(summary, "subscribe-conversations") == received(ledger, "cqm.SubscribeExConversations")
    assert count(summary, "subscribe-conversations", "failures") == 0
    assert count(summary, "request-conversation") == ledger["conversations"]["opened"] == users, summary["steps"]
    assert conversations["opened"] == users and conversations["reused"] >= users, conversations
    assert count(summary, "subscribe-messages") == received(ledger, SUBSCRIBE_EVENTS)


# ---------------------------------------------------------------------------- with the emulator's agents
AGENT_DELAY_MS = 200


def test_replies_receipts_and_round_trips_reconcile_with_the_ledger(emulator, tmp_path: Path) -> None:
    emu = emulator("--agents", "10", "--agent-reply-delay", str(AGENT_DELAY_MS))
    args = ["--lp-hold", "0", "--lp-messages", "3", "--lp-message-interval", "0.3", "--lp-reply-timeout", "3"]
    gate = ["--lp-threshold", "messages:lost_ratio<1%", "--lp-threshold", f"messages:p95<{AGENT_DELAY_MS + 500}"]
    gate += ["--lp-threshold", "messages:reply_ratio>0"]  # messages the run's stop cut short count as sent
    started = time.monotonic()
    run = run_locust([*QUICK, *args, *gate, "--lp-typing"], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    assert time.monotonic() - started < 60
    messages, socket = summary["messages"], summary["phases"]["socket"]
    assert socket["failures"] == 0, socket
    assert messages["lost"] == 0 and messages["replied"] == messages["received"] > 0, messages
    assert messages["receipts_sent"] == {"ACCEPT": messages["received"], "READ": messages["received"]}
    publishes_reconcile(summary, ledger)
    # the emulator's own counts: the consumers' messages and receipts, the agent's receipts, typing and replies
    consumer, agent, replies = ledger["messages"]["consumer"], ledger["messages"]["agent"], ledger["agents"]["replies"]
    assert consumer["content"] == messages["sent"] and consumer["typing"] == messages["typing_sent"]
    assert consumer["receipts"] == messages["receipts_sent"]
    # a reply the agent sent as the run's stop closed its conversation reaches no consumer
    in_flight_at_stop = messages["sent"] - messages["replied"] - messages["lost"]
    assert messages["received"] <= agent["content"] == replies["sent"] <= messages["received"] + in_flight_at_stop
    assert agent["receipts"] == messages["receipts_received"] == {"ACCEPT": messages["sent"], "READ": messages["sent"]}
    assert replies["due"] == replies["sent"] + replies["cancelled"] and replies["declined"] == 0
    trip = summary["steps"]["message-round-trip"]
    assert trip["count"] == messages["replied"]
    assert trip["min_ms"] >= AGENT_DELAY_MS and trip["max_ms"] < AGENT_DELAY_MS + 500, trip
    # once per conversation the agent answered: every session that finished, at most every conversation
    first = summary["steps"]["first-agent-reply"]
    assert count(summary, "hold") <= first["count"] <= summary["conversations"]["opened"], first
    assert first["failures"] == 0 and first["min_ms"] >= AGENT_DELAY_MS
    # the messages scope gates on them: the lost share, the round trip's percentiles, the replied share
    results = {r["rule"]: r for r in summary["thresholds"]["rules"]}
    assert summary["thresholds"]["passed"] and run.returncode == 0, results
    assert results["messages: reply_ratio > 0"]["value"] == messages["replied"] / messages["sent"]
    assert results["messages: lost_ratio < 1%"]["value"] == 0.0
    assert results[f"messages: p95 < {AGENT_DELAY_MS + 500}"]["value"] == trip["p95_ms"]


def test_replies_sent_while_the_socket_was_down_arrive_on_the_new_one(emulator, tmp_path: Path) -> None:
    emu = emulator("--agents", "10", "--agent-reply-delay", "300", "--fault", "hold=close:4401,after=0.4")
    reconnect = ["--lp-on-drop", "reconnect", "--lp-reconnect-delay", "0.05"]
    args = ["--lp-hold", "0", "--lp-messages", "4", "--lp-message-interval", "0.2", "--lp-reply-timeout", "3"]
    run = run_locust([*QUICK, "-t", "4s", *reconnect, *args], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    drops, messages = summary["reconnect"], summary["messages"]
    assert drops["drops"] == drops["recovered"] > 0, drops
    # replies due while a socket was being replaced came as the new subscription's replay: none lost
    assert messages["lost"] == 0 and messages["replied"] > 0, messages
    assert set(summary["phases"]["socket"]["categories"]) <= {"close 4401"}, summary["phases"]["socket"]
    publishes_reconcile(summary, ledger)


def test_chat_conf_runs_the_realistic_session_against_the_agents(tmp_path: Path) -> None:
    run = run_locust(
        ["--config", str(ROOT / "scenarios" / "chat.conf"), *QUICK, "-t", "6s", "--lp-message-interval", "0.3"],
        tmp_path,
        timeout=120,
    )
    summary = checked(run)
    assert run.returncode == 0, run.output[-3000:]
    assert summary["run"]["scenario"] == "chat"
    messages = summary["messages"]
    assert messages["sent"] > 0 and messages["replied"] > 0 and messages["lost"] == 0, messages
    for step in ("connect", "subscribe-conversations", "subscribe-messages", "publish", "message-round-trip"):
        assert count(summary, step) > 0 and count(summary, step, "failures") == 0, (step, summary["steps"].get(step))
    assert summary["pings"]["sent"] == 0  # GetClock keeps the sockets alive


def test_fewer_agents_than_consumers_make_the_first_reply_wait_and_the_ledger_says_why(emulator, tmp_path: Path) -> None:
    # one agent for four users: a conversation waits for the agent while another holds it
    emu = emulator("--agents", "1", "--agent-reply-delay", str(AGENT_DELAY_MS))
    args = ["-u", "4", "-r", "40", "-t", "4s", "--lp-hold", "0", "--lp-messages", "1", "--lp-reply-timeout", "8"]
    run = run_locust([*QUICK, *args], tmp_path, target=emu.url)
    summary, ledger = checked(run), emu.ledger()
    assert summary["phases"]["socket"]["failures"] == 0, summary["phases"]["socket"]
    first, queue = summary["steps"]["first-agent-reply"], ledger["agents"]["queue"]
    assert queue["entered"] > 0 and queue["peak"] >= 1 and queue["abandoned"] == 0, queue
    # every conversation got the agent in turn; those the run's stop closed before the reply (one message
    # each) had it cancelled
    replies = ledger["agents"]["replies"]
    assert queue["wait_ms"]["count"] == ledger["agents"]["assigned"] == first["count"] + replies["cancelled"]
    # each first reply waited its time in the queue, then the reply delay: the longest wait shows in it
    assert first["max_ms"] >= queue["wait_ms"]["max"] + AGENT_DELAY_MS - 5, (first, queue["wait_ms"])
    assert first["max_ms"] > 2 * AGENT_DELAY_MS and first["min_ms"] >= AGENT_DELAY_MS
    assert ledger["agents"]["busy"] == 0 and queue["now"] == 0
