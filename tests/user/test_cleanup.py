"""What a failed socket left open is closed through a new connection of the same consumer.

Every socket-phase fault that can hit a session after its conversation opened (or while the
request that opens it was in flight), each in a short real run: after the stop the emulator has
no conversation and no socket open, the summary's conversations are the ledger's, and the
cleanup's own calls are counted apart from the steps, so steps + cleanup calls = the ledger.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from harness.reports.loading import load_schema
from tests.user.runs import run_locust

QUICK = [
    *("-u", "3", "-r", "30", "-t", "2s", "--stop-timeout", "5"),
    *("--lp-hold", "0.6", "--lp-ping-interval", "0.1", "--lp-pong-timeout", "0.25", "--lp-request-timeout", "0.5"),
    *("--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"),
]
RETRIES = ["--lp-cleanup-attempts", "10"]  # every other close fails: 4 tries would leave one in 16 open
# (emulator options, extra locust options, the category the sessions fail with)
CASES = {
    "hold close 4401": (["--fault", "hold=close:4401,after=0.3"], [], "close 4401"),
    "hold close 4407": (["--fault", "hold=close:4407,after=0.3"], [], "close 4407"),
    "hold reset": (["--fault", "hold=reset,after=0.3"], [], "dropped"),
    "hold lost pongs": (["--fault", "hold=no_pong,after=0.1"], [], "pong timeout"),
    "ping lost pong": (["--seed", "5", "--fault", "ping=no_pong,p=0.3"], [], "pong timeout"),
    "request malformed answer": (["--fault", "cm.ConsumerRequestConversation=malformed"], [], "bad json"),
    "request truncated answer": (["--fault", "cm.ConsumerRequestConversation=truncated"], [], "bad json"),
    "request late answer": (["--fault", "cm.ConsumerRequestConversation=slow:0.8"], [], "timeout"),
    "close error 500": (["--seed", "3", "--fault", "cm.UpdateConversationField=code:500,p=0.5"], RETRIES, "resp 500"),
    "close malformed answer": (["--fault", "cm.UpdateConversationField=malformed"], [], "bad json"),
    "close late answer": (["--fault", "cm.UpdateConversationField=slow:0.8"], [], "timeout"),
    "close reset": (["--seed", "3", "--fault", "cm.UpdateConversationField=reset,p=0.5"], RETRIES, "dropped"),
    "close server close": (
        ["--seed", "3", "--fault", "cm.UpdateConversationField=close:4401,p=0.5"],
        RETRIES,
        "close 4401",
    ),
    "token expiry mid-hold": (["--lp-token-lifetime", "1"], ["--lp-hold", "1.5"], "close 4407"),
    "external token expiry": (
        ["--lp-token-lifetime", "1"],
        ["--lp-hold", "1.5", "--lp-identity", "external"],
        "close 4401",
    ),
}
CLOSE = "cm.UpdateConversationField"


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_is_left_open(emulator, tmp_path: Path, case: str) -> None:
    emu_args, extra, category = CASES[case]
    log = tmp_path / "emulator.log"
    with log.open("w") as stderr:
        emu = emulator(*emu_args, stderr=stderr)
        run = run_locust([*QUICK, *extra], tmp_path / "reports", target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    jsonschema.validate(summary, load_schema())
    assert summary["phases"]["socket"]["categories"].get(category, 0) > 0, (summary["phases"], run.output[-2000:])
    assert ledger["conversations"]["open"] == 0 and ledger["sockets"]["open"] == 0, ledger["conversations"]
    ours = summary["conversations"]
    assert (ours["opened"], ours["closed"]) == (ledger["conversations"]["opened"], ledger["conversations"]["closed"])
    assert ours["left_open"] == 0 and ours["open"] == 0, ours
    if category != "resp 500" or ours["closed_by_cleanup"]:  # a 500 on the close: the cleanup closed them
        assert ours["closed_by_cleanup"] > 0, ours
    calls, endpoints = ours["cleanup"]["calls"], ledger["endpoints"]
    # The cleanup is not in the steps, and the ledger saw it all: handshakes exactly; a close may fail
    # on a socket the server is closing at that moment, unseen by it (so its step counts a failure).
    assert summary["steps"]["connect"]["count"] + calls["connect"] == endpoints["connect"]["received"]
    close_step = summary["steps"].get("close-conversation", {"count": 0, "failures": 0})
    closes = close_step["count"] + calls.get(CLOSE, 0)
    assert closes - close_step["failures"] <= endpoints.get(CLOSE, {}).get("received", 0) <= closes, (calls, endpoints)
    if category == "pong timeout":  # every socket aborted for a lost pong failed its session, once
        assert summary["pings"]["timeouts"] == summary["phases"]["socket"]["categories"]["pong timeout"]
    assert "Traceback" not in log.read_text()


def test_nothing_opened_nothing_to_clean(emulator, tmp_path: Path) -> None:
    """An error answer to the request opened nothing: no cleanup, no conversation, and the request's
    own failure is the only thing counted."""
    emu = emulator("--fault", "cm.ConsumerRequestConversation=code:500")
    run = run_locust(QUICK, tmp_path, target=emu.url)
    ours, ledger = run.summary["conversations"], emu.ledger()
    assert ledger["conversations"]["opened"] == 0 and ours["opened"] == 0 and ours["cleanup"]["conversations"] == 0
    assert run.summary["phases"]["socket"]["categories"] == {"resp 500": run.summary["phases"]["socket"]["sessions"]}


def test_without_cleanup_the_report_says_what_was_left_open(emulator, tmp_path: Path) -> None:
    emu = emulator("--fault", "hold=close:4401,after=0.3")
    run = run_locust([*QUICK, "--lp-cleanup-attempts", "0"], tmp_path, target=emu.url)
    ours, ledger = run.summary["conversations"], emu.ledger()
    assert ours["left_open"] == ledger["conversations"]["open"] > 0
    assert ours["left_open_reasons"] == {"cleanup off": ours["left_open"]}
    assert "left open (cleanup off" in run.output
