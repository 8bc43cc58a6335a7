"""What a failed socket left open is closed through a new connection of the same consumer.

The token expiring mid-hold (anonymous: 4407, external: 4401), an error answer that opened nothing,
and the cleanup turned off, each in a short real run: after the stop the emulator has no
conversation and no socket open, the summary's conversations are the ledger's, and the cleanup's
own calls are counted apart from the steps, so steps + cleanup calls = the ledger. Every other
socket-phase fault is a case of the fault matrix (test_fault_matrix.py).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from harness.reports.loading import load_schema
from tests.user.runs import QUICK, run_locust

# (emulator options, extra locust options, the category the sessions fail with); every other socket
# fault is in the fault matrix (test_fault_matrix.py), with the same checks and stricter ones.
CASES = {
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
    assert ours["closed_by_cleanup"] > 0, ours
    calls, endpoints = ours["cleanup"]["calls"], ledger["endpoints"]
    # The cleanup is not in the steps, and the ledger saw it all: handshakes exactly; a close may fail
    # on a socket the server is closing at that moment, unseen by it (so its step counts a failure).
    assert summary["steps"]["connect"]["count"] + calls["connect"] == endpoints["connect"]["received"]
    close_step = summary["steps"].get("close-conversation", {"count": 0, "failures": 0})
    closes = close_step["count"] + calls.get(CLOSE, 0)
    assert closes - close_step["failures"] <= endpoints.get(CLOSE, {}).get("received", 0) <= closes, (calls, endpoints)
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


def test_users_killed_at_the_stop_close_their_conversations_on_their_own_sockets(emulator, tmp_path: Path) -> None:
    """No --stop-timeout: Locust kills every user at once, mid-hold or mid-close. Each closes its
    conversation on the socket it holds (or learns that the close it had sent was answered), so
    the cleanup's new connections, which would only queue behind them, are not needed."""
    emu = emulator()
    args = ["-u", "100", "-r", "100", "-t", "3s", "--lp-hold", "60", "--lp-request-timeout", "2"]
    run = run_locust(args, tmp_path, target=emu.url)
    ours, ledger = run.summary["conversations"], emu.ledger()
    assert ledger["conversations"]["open"] == 0 and ledger["sockets"]["open"] == 0, ledger["conversations"]
    assert ours["opened"] == ours["closed"] == ledger["conversations"]["closed"] == 100, ours
    assert ours["closed_by_cleanup"] == ours["cleanup"]["conversations"] == 0, ours
    assert ledger["sockets"]["accepted"] == run.summary["steps"]["connect"]["count"] == 100
