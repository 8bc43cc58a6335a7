"""Real locust processes against the real emulator on loopback: the numbers must tell the truth."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from harness.reports.loading import load_schema
from tests.user.runs import run_locust

SHORT = ["-u", "8", "-r", "8", "-t", "6s", "--stop-timeout", "5", "--lp-hold", "0.5", "--lp-ping-interval", "0.2"]
STEP_LEDGER_KEYS = {
    "anonymous-authorize": "anonymous-authorize",
    "authenticate": "authenticate",
    "connect": "connect",
    "request-conversation": "cm.ConsumerRequestConversation",
    "close-conversation": "cm.UpdateConversationField",
}


def test_counts_reconcile_with_the_emulator_ledger(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust(SHORT, tmp_path, target=emu.url)
    assert run.returncode == 0, run.output[-3000:]
    summary, ledger = run.summary, emu.ledger()
    preflight = summary["run"]["preflight"]  # the one anonymous authorize sent before the load
    assert preflight == {"anonymous-authorize": {"sent": 1, "ok": 1}}
    for step, key in STEP_LEDGER_KEYS.items():
        ours, theirs = summary["steps"][step], ledger["endpoints"][key]
        before = preflight.get(step, {"sent": 0, "ok": 0})
        assert ours["count"] > 0, step
        assert ours["count"] + before["sent"] == theirs["received"], (step, ours["count"], theirs)
        assert ours["failures"] == ours["count"] - (theirs["ok"] - before["ok"]), (step, ours, theirs)
    pings = summary["pings"]
    assert pings["answered"] == summary["steps"]["ping"]["count"] > 0
    assert pings["answered"] == ledger["pings"]["ponged"]
    assert ledger["sockets"]["open"] == 0 and ledger["conversations"]["open"] == 0
    assert summary["sockets"]["open"] == 0
    assert summary["phases"]["token"]["failures"] == 0 and summary["phases"]["socket"]["failures"] == 0
    assert summary["run"]["target"] == "real"  # hosts were given in settings, not embedded


def test_an_abrupt_stop_leaves_no_conversation_open(emulator, tmp_path: Path) -> None:
    """No --stop-timeout: Locust kills users mid-step. One killed while the server is opening its
    conversation (opened at once, answered 0.3 s later) learns the id from the late answer and closes it."""
    emu = emulator("--fault", "cm.ConsumerRequestConversation=slow:0.3")
    run = run_locust(["-u", "8", "-r", "8", "-t", "3s", "--lp-hold", "0"], tmp_path, target=emu.url)
    assert run.returncode == 0, run.output[-3000:]
    ledger = emu.ledger()
    assert ledger["endpoints"]["cm.ConsumerRequestConversation"]["received"] > 8  # several sessions per user
    assert ledger["conversations"]["open"] == 0, ledger["conversations"]
    assert ledger["sockets"]["open"] == 0, ledger["sockets"]


def test_closes_that_time_out_after_the_stop_are_interrupted_not_failed(emulator, tmp_path: Path) -> None:
    """The stop ends every hold at once; a close that then gets no answer is the stop's, not the target's.
    An error response to a close stays a failure."""
    args = ["-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "10", "--lp-hold", "60", "--lp-request-timeout", "0.5"]
    hung = run_locust(args, tmp_path / "hang", target=emulator("--fault", "cm.UpdateConversationField=hang").url)
    socket = hung.summary["phases"]["socket"]
    assert socket["interrupted"] == 4 and socket["failures"] == 0, socket
    assert hung.summary["steps"]["close-conversation"]["failures"] == 4  # the step itself says what happened
    assert "+4 interrupted by the stop" in hung.output
    refused = run_locust(args, tmp_path / "code", target=emulator("--fault", "cm.UpdateConversationField=code:500").url)
    socket = refused.summary["phases"]["socket"]
    assert socket["failures"] == 4 and socket["interrupted"] == 0 and socket["categories"] == {"resp 500": 4}, socket


def _p50(run, step: str) -> float:
    return run.summary["steps"][step]["p50_ms"]


def test_injected_latency_moves_only_that_step(emulator, tmp_path: Path) -> None:
    base = run_locust(SHORT, tmp_path / "base", target=emulator().url)
    slow = run_locust(SHORT, tmp_path / "slow", target=emulator("--latency", "authenticate=80").url)
    assert base.returncode == 0 and slow.returncode == 0, slow.output[-3000:]
    shift = _p50(slow, "authenticate") - _p50(base, "authenticate")
    assert 70 <= shift <= 95, shift  # Locust rounds p50 to 2 significant digits above 100 ms
    for step in ("anonymous-authorize", "connect", "request-conversation", "close-conversation"):
        assert abs(_p50(slow, step) - _p50(base, step)) < 10, step


def test_failure_rates_match_injected_faults(emulator, tmp_path: Path) -> None:
    emu = emulator("--seed", "7", "--fault", "anonymous-authorize=status:503,p=0.1", "--fault", "hold=close:4401,p=0.3")
    # The sessions' faults alone: no cleanup (its own sockets would draw hold faults too) and short pauses
    # (the default 5 s pause after each failure would leave few sessions in 6 s).
    quick = ["--lp-cleanup-attempts", "0", "--lp-retry-pauses", "0.1", "--lp-backoff-base", "0.2", "--lp-backoff-cap", "0.3"]
    run = run_locust([*SHORT[:-4], "--lp-hold", "1", "--lp-ping-interval", "0.3", *quick], tmp_path, target=emu.url)
    summary, ledger = run.summary, emu.ledger()
    token, socket = summary["phases"]["token"], summary["phases"]["socket"]
    injected_503 = ledger["endpoints"]["anonymous-authorize"]["faults"].get("status", 0)
    injected_close = ledger["endpoints"]["hold"]["faults"].get("close", 0)
    assert injected_503 > 0 and injected_close > 0, ledger
    assert token["categories"].get("http 503") == injected_503
    assert token["failures"] == injected_503
    assert socket["categories"].get("close 4401") == injected_close
    assert summary["steps"]["anonymous-authorize"]["failures"] == injected_503
    assert run.returncode != 0  # locust's usual rule: any failure -> exit 1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LP_IDP": "http://127.0.0.1:9", "LP_ASYNCMESSAGINGENT": "http://127.0.0.1:9"}, "LP_ACCOUNT"),
        (
            {"LP_ACCOUNT": "1", "LP_IDP": "http://127.0.0.1:9", "LP_ASYNCMESSAGINGENT": "http://127.0.0.1:9"},
            "unreachable",
        ),
        ({"LP_ACCOUNT": "1", "LP_IDP": "http://127.0.0.1:notaport", "LP_ASYNCMESSAGINGENT": "h"}, "LP_IDP"),
    ],
)
def test_config_errors_end_with_one_clear_message(tmp_path: Path, env: dict[str, str], named: str) -> None:
    run = run_locust(["-u", "1", "-t", "5s"], tmp_path, env=env, timeout=60)
    assert run.returncode == 2, run.output[-2000:]
    assert "configuration error" in run.output and named in run.output
    assert "Traceback" not in run.output


def test_embedded_emulator_default_run_writes_reports(tmp_path: Path) -> None:
    run = run_locust(["-u", "4", "-r", "4", "-t", "4s", "--stop-timeout", "5", "--lp-hold", "0.5"], tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert "embedded emulator" in run.output
    summary = run.summary
    assert summary["run"]["target"] == "emulator" and summary["run"]["end_reason"] == "time limit"
    assert set(summary) >= {"run", "steps", "phases", "sockets", "pings"}
    for name in ("locust_report.html", "locust_stats.csv", "locust_failures.csv", "locust_stats.json", "summary.txt"):
        assert (run.run_folder / name).is_file(), name
    assert "time-to-conversation" in summary["steps"]
    for name, step in summary["steps"].items():  # Locust's buckets round up: ours stay within min..max
        pcts = [step[k] for k in ("min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms")]
        assert pcts == sorted(pcts), (name, pcts)
    jsonschema.Draft202012Validator(load_schema()).validate(summary)
    assert "request-conversation" in run.output and "socket" in run.output  # the terminal summary


def test_discovery_finds_the_hosts_through_csds(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust(SHORT, tmp_path, env={"LP_ACCOUNT": "acme", "LP_DISCOVERY": emu.url})
    assert run.returncode == 0, run.output[-3000:]
    assert emu.ledger()["endpoints"]["csds"]["received"] == 2  # idp + asyncMessagingEnt, once each
    assert run.summary["run"]["idp"] == emu.url and run.summary["steps"]["connect"]["count"] > 0


def test_external_identity_signs_its_own_jwts(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust([*SHORT, "--lp-identity", "external"], tmp_path, target=emu.url)
    assert run.returncode == 0, run.output[-3000:]
    summary, ledger = run.summary, emu.ledger()
    assert "anonymous-authorize" not in summary["steps"]
    assert ledger["endpoints"].get("anonymous-authorize", {}).get("received", 0) == 0
    assert summary["steps"]["authenticate"]["count"] == ledger["endpoints"]["authenticate"]["ok"] > 0


def test_processes_two_sums_worker_metrics_on_the_master(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust([*SHORT, "--processes", "2"], tmp_path, target=emu.url)
    assert run.returncode == 0, run.output[-3000:]
    summary, ledger = run.summary, emu.ledger()
    assert summary["run"]["processes"] == 2
    token, socket = summary["phases"]["token"], summary["phases"]["socket"]
    preflight = summary["run"]["preflight"]["anonymous-authorize"]["sent"]  # sent before the load
    assert token["sessions"] + preflight == ledger["endpoints"]["anonymous-authorize"]["received"] > 1
    assert socket["sessions"] == ledger["endpoints"]["connect"]["received"]
    assert summary["steps"]["connect"]["count"] == ledger["endpoints"]["connect"]["received"]
    assert summary["sockets"]["opened"] == ledger["sockets"]["accepted"]
