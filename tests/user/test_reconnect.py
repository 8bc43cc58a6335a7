"""Reconnecting like a real client (``--lp-on-drop reconnect``), renewing tokens mid-hold, returning consumers.

Each a short real run against a real emulator: the summary's reconnect counts and steps, the
emulator's ledger (every call a reconnect made is counted apart, so steps + reconnect calls +
cleanup calls + the preflight's authorize = what the emulator received), and nothing left open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from harness.reports.loading import load_schema
from tests.user.runs import LocustRun, run_locust

QUICK = [
    *("-u", "3", "-r", "30", "-t", "3s", "--stop-timeout", "5"),
    *("--lp-ping-interval", "0.1", "--lp-pong-timeout", "2", "--lp-request-timeout", "3"),
    *("--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"),
]
RECONNECT = ["--lp-on-drop", "reconnect", "--lp-reconnect-delay", "0.05"]
SUBSCRIBE = "cqm.SubscribeExConversations"


def _reconciled(run: LocustRun, ledger: dict[str, Any], *, left_open_because: str | None = None) -> None:
    """Every call the emulator received was a step, a reconnect's, the cleanup's or the preflight's.

    Nothing is left open, or (``left_open_because``: a fault that also meets every cleanup try)
    exactly what the summary says it left open, all for that reason.
    """
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    reconnect, cleanup = summary["reconnect"]["calls"], summary["conversations"]["cleanup"]["calls"]
    preflight = {k: v["sent"] for k, v in (summary["run"].get("preflight") or {}).items()}
    steps = {"anonymous-authorize": "anonymous-authorize", "authenticate": "authenticate", "connect": "connect"}
    for target, step in steps.items():
        ours = summary["steps"].get(step, {"count": 0})["count"]
        ours += reconnect.get(target, 0) + cleanup.get(target, 0) + preflight.get(target, 0)
        assert ours == ledger["endpoints"][target]["received"], (target, summary["steps"], reconnect, cleanup)
    assert reconnect.get(SUBSCRIBE, 0) + cleanup.get(SUBSCRIBE, 0) == ledger["endpoints"].get(SUBSCRIBE, {}).get(
        "received", 0
    )
    conversations = summary["conversations"]
    assert ledger["conversations"]["open"] == conversations["left_open"] and ledger["sockets"]["open"] == 0, ledger
    if left_open_because is None:
        assert conversations["left_open"] == 0, conversations
    else:
        assert set(conversations["left_open_reasons"]) <= {left_open_because}, conversations


def test_a_4401_mid_hold_reauthenticates_and_resumes_the_same_conversation(emulator, tmp_path: Path) -> None:
    # Each socket is closed 0.4 s after it is accepted; the hold ends 0.6 s in, on the second socket.
    emu = emulator("--fault", "hold=close:4401,after=0.4")
    run = run_locust([*QUICK, *RECONNECT, "--lp-hold", "0.6"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    _reconciled(run, ledger)
    counts, socket = summary["reconnect"], summary["phases"]["socket"]
    drops = ledger["sockets"]["closed_by_server"]["4401"]
    assert counts["drops"] == counts["recovered"] == counts["reconnects"] == drops > 0, counts
    assert counts["lost"] == 0 and socket["failures"] == 0, (counts, socket)
    # 4401: a fresh LP token (authenticate again), the identity as it was (not extended)
    assert counts["calls"]["authenticate"] == drops and "anonymous-authorize" not in counts["calls"]
    # resumed, not replaced: one conversation per session, closed by the session itself on the new socket
    conversations = summary["conversations"]
    assert ledger["conversations"]["opened"] == conversations["opened"] == socket["sessions"] - socket["interrupted"]
    assert conversations["closed_by_cleanup"] == 0 and ledger["conversations"]["closed"] == conversations["closed"]
    assert summary["steps"]["reconnect"]["count"] == drops and summary["steps"]["reconnect"]["failures"] == 0
    assert f"reconnects: {drops} drops" in run.output


def test_holds_longer_than_the_token_lifetime_complete_when_reconnecting(emulator, tmp_path: Path) -> None:
    emu = emulator("--lp-token-lifetime", "2")
    run = run_locust([*QUICK, *RECONNECT, "-t", "4s", "--lp-hold", "2.6"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    _reconciled(run, ledger)
    counts = summary["reconnect"]
    # every expiry is seen, and is a drop, even one that lands on the close or the run's stop
    # (interrupted, not lost); but one between the close's answer and the socket's close: nothing to resume
    expired = ledger["sockets"]["closed_by_server"]["4407"]
    assert summary["sockets"]["server_closes"]["4407"] == expired > 0, summary["sockets"]
    assert expired - 1 <= counts["drops"] <= expired, counts
    assert counts["drops"] == counts["recovered"] + counts["interrupted"] and counts["recovered"] > 0, counts
    assert summary["phases"]["socket"]["failures"] == 0 and summary["steps"]["hold"]["failures"] == 0
    assert summary["steps"]["close-conversation"]["failures"] == 0
    assert summary["steps"]["hold"]["count"] > 0
    # 4407: the identity was extended at the IDP, then authenticated
    assert counts["calls"]["anonymous-authorize"] == counts["reconnects"] == ledger["identities"]["extended"]


def test_a_socket_closed_under_the_conversation_close_reconnects_and_closes_it_there(emulator, tmp_path: Path) -> None:
    # Half the closes are answered with a server close (the close is not processed): the consumer
    # comes back on its conversation and sends the close again; nothing fails, nothing is left.
    emu = emulator("--fault", "cm.UpdateConversationField=close:4401,p=0.5")
    run = run_locust([*QUICK, *RECONNECT, "--lp-hold", "0.2"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    # a close the run's stop cuts short goes to the cleanup, whose tries meet the same fault
    _reconciled(run, ledger, left_open_because="close 4401")
    counts, socket = summary["reconnect"], summary["phases"]["socket"]
    conversations = summary["conversations"]
    # the closes the run's stop left to the cleanup meet the fault too: its failed tries, not drops
    cleanup_closes = conversations["cleanup"]["failures"].get("close 4401", 0)
    assert counts["drops"] + cleanup_closes == ledger["sockets"]["closed_by_server"]["4401"], (counts, conversations)
    assert counts["drops"] == counts["recovered"] + counts["interrupted"] and counts["recovered"] > 0, counts
    assert socket["failures"] == 0 and summary["steps"]["close-conversation"]["failures"] == 0, summary["steps"]
    assert conversations["cleanup"]["conversations"] <= counts["interrupted"], conversations
    assert ledger["conversations"]["closed"] == conversations["closed"], conversations
    assert conversations["opened"] == conversations["closed"] + conversations["left_open"], conversations


def test_a_token_is_renewed_before_it_expires_mid_hold(emulator, tmp_path: Path) -> None:
    emu = emulator("--lp-token-lifetime", "3")
    run = run_locust([*QUICK, "-t", "5s", "--lp-hold", "3.5", "--lp-token-refresh", "1"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    _reconciled(run, ledger)
    counts = summary["reconnect"]
    assert counts["refreshes"] > 0 and counts["drops"] == 0 and not ledger["sockets"]["closed_by_server"], counts
    assert summary["phases"]["socket"]["failures"] == 0 and summary["steps"]["hold"]["count"] > 0
    assert counts["calls"]["authenticate"] == counts["refreshes"]  # a new LP token each time, same identity


def test_a_drop_no_try_recovers_is_a_lost_session_and_its_conversation_is_closed(emulator, tmp_path: Path) -> None:
    emu = emulator("--fault", "hold=reset,after=0.2", "--fault", f"{SUBSCRIBE}=code:503")
    run = run_locust([*QUICK, *RECONNECT, "--lp-hold", "1", "--lp-reconnect-attempts", "2"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    _reconciled(run, ledger)
    counts, socket = summary["reconnect"], summary["phases"]["socket"]
    # a drop whose tries the end of the run cut short is interrupted, not lost
    assert counts["lost"] + counts["interrupted"] == counts["drops"] and counts["lost"] > 0, counts
    assert counts["recovered"] == 0 and counts["failures"] == {"resp 503": counts["reconnects"]}, counts
    assert 2 * counts["lost"] <= counts["reconnects"] <= 2 * counts["drops"], counts
    assert socket["categories"].get("dropped") == counts["lost"], socket  # the drop is why the session failed
    assert summary["steps"]["reconnect"]["failures"] == counts["lost"]
    assert summary["conversations"]["closed_by_cleanup"] == counts["drops"]  # lost or interrupted: closed


def test_by_default_a_drop_fails_the_session(emulator, tmp_path: Path) -> None:
    emu = emulator("--fault", "hold=close:4401,after=0.3")
    run = run_locust([*QUICK, "--lp-hold", "0.6"], tmp_path, target=emu.url)
    summary = run.summary
    assert summary["reconnect"]["drops"] == 0 and "reconnect" not in summary["steps"]
    assert summary["phases"]["socket"]["categories"]["close 4401"] == ledger_closes(emu.ledger(), "4401")


def ledger_closes(ledger: dict[str, Any], code: str) -> int:
    return ledger["sockets"]["closed_by_server"].get(code, 0)


def test_a_returning_consumer_keeps_its_identity(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust([*QUICK, "--lp-hold", "0.2", "--lp-consumer", "returning"], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    sessions = summary["steps"]["anonymous-authorize"]["count"]
    assert sessions > 3
    # one identity per user (3) and the preflight's; every later session extended its user's own
    assert ledger["identities"] == {"issued": 3 + 1, "extended": sessions - 3}, ledger["identities"]
    new = run_locust([*QUICK, "--lp-hold", "0.2"], tmp_path / "new", target=emu.url)
    assert emu.ledger()["identities"]["extended"] == ledger["identities"]["extended"], new.output[-1000:]
