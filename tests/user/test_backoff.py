"""Backoff by default and the circuit breaker, in real locust runs; the emulator's ledger is the truth.

A 503 without Retry-After must not become a retry storm (the default first pause is 5 s), a
handshake 429 waits its Retry-After, and a dead target is hammered at the breaker's rate (one
probe per open period), with one clear log line saying it is down and how the emulator exited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from locust import argument_parser

from harness.client.errors import HandshakeRejected
from harness.client.socket import ConsumerSocket
from harness.emulator.launcher import EmulatorProcess
from harness.options import add_arguments
from harness.reports.loading import load_schema
from harness.settings import Settings, SettingsError
from tests.client.support import lp_token, ws_url
from tests.user.runs import LOCUST, ROOT, run_locust

FAST = ["--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"]
HOSTS = ["--lp-account", "1", "--lp-idp", "h", "--lp-asyncmessagingent", "h"]


def _settings(args: list[str]) -> Settings:
    parser = argument_parser.get_parser()
    add_arguments(parser)
    return Settings.from_options(parser.parse_args([*HOSTS, *args]))


def test_backoff_settings_default_to_livepersons_guidance_and_name_a_bad_value() -> None:
    default = _settings([])
    assert default.retry_pauses_s == (5.0, 10.0, 15.0) and default.backoff_base_s == 120.0
    assert (default.backoff_cap_s, default.on_target_down, default.cleanup_attempts) == (600.0, "pause", 4)
    assert _settings(["--lp-retry-pauses", "1, 2"]).retry_pauses_s == (1.0, 2.0)
    for args, named in (
        (["--lp-retry-pauses", "soon"], "--lp-retry-pauses"),
        (["--lp-retry-pauses", "5,-1"], "--lp-retry-pauses"),
        (["--lp-backoff-cap", "x"], "--lp-backoff-cap"),
        (["--lp-cleanup-attempts", "-1"], "--lp-cleanup-attempts"),
        (["--lp-cleanup-attempts", "2.5"], "--lp-cleanup-attempts"),
    ):
        with pytest.raises(SettingsError) as info:
            _settings(args)
        assert named in str(info.value), info.value


class Run:
    """A locust process read line by line while it runs (to learn the embedded emulator's URL and pid)."""

    def __init__(self, args: list[str], reports: Path, target: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
        env.update({"PYTHONUNBUFFERED": "1", "LP_REPORTS_DIR": str(reports)})
        if target:
            env.update({"LP_ACCOUNT": "test-account", "LP_IDP": target, "LP_ASYNCMESSAGINGENT": target})
        self.reports = reports
        self.proc = subprocess.Popen(
            [*LOCUST, "--headless", "--only-summary", *args], cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, f"no {pattern!r} in:\n{''.join(self.lines)[-3000:]}"
                self.changed.wait(left)

    def finish(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()  # only the process this test started, by its handle

    @property
    def output(self) -> str:
        with self.changed:
            return "".join(self.lines)

    @property
    def summary(self) -> dict[str, Any]:
        folder = sorted(p for p in self.reports.iterdir() if (p / "summary.json").is_file())[-1]
        return json.loads((folder / "summary.json").read_text())


class Arrivals:
    """When the ledger's ``received`` count for a target reached each value (polled every 20 ms)."""

    def __init__(self, emu: EmulatorProcess, target: str) -> None:
        self.emu, self.target = emu, target
        self.times: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        seen = 0
        while not self.done.wait(0.02):  # polling the ledger: it is what the test measures
            count = self.emu.ledger()["endpoints"].get(self.target, {}).get("received", 0)
            now = time.monotonic()
            for n in range(seen + 1, count + 1):
                self.times[n] = now
            seen = max(seen, count)

    def stop(self) -> dict[int, float]:
        self.done.set()
        self.thread.join(5)
        return self.times


def _preflight(summary: dict[str, Any], step: str) -> int:
    return int(((summary["run"].get("preflight") or {}).get(step) or {}).get("sent", 0))


def test_a_503_without_retry_after_waits_the_default_5_s_then_10_s(emulator, tmp_path: Path) -> None:
    """5 users, 7 s, every anonymous authorize a 503: each user tries at 0 and 5 s (next: 15 s), 10 in all."""
    emu = emulator("--fault", "anonymous-authorize=status:503")
    users = 5
    arrivals = Arrivals(emu, "anonymous-authorize")
    run = Run(["-u", str(users), "-r", "50", "-t", "7s", "--lp-hold", "0.5"], tmp_path, target=emu.url)
    assert run.finish() == 1, run.output[-3000:]
    times = arrivals.stop()
    summary, ledger = run.summary, emu.ledger()
    before = _preflight(summary, "anonymous-authorize")  # sent before the users started
    sent = ledger["endpoints"]["anonymous-authorize"]["received"] - before
    assert sent == 2 * users, (sent, ledger["endpoints"]["anonymous-authorize"])  # no third try before 15 s
    first_wave = times[before + users] - times[before + 1]  # all users fail at once...
    pause = times[before + users + 1] - times[before + 1]  # ... and come back 5 s later, not sooner
    assert first_wave < 1.0 and 4.8 <= pause <= 5.6, (first_wave, pause)
    backoff = summary["backoff"]
    assert backoff["pauses"] == 2 * users and backoff["pause_s"] == pytest.approx(users * (5 + 10))


def test_a_handshake_429_waits_its_retry_after(emulator, tmp_path: Path) -> None:
    """Retry-After: 2 on the upgrade wins over short pauses: 5 users in 5 s connect at 0, 2, 4 s at most."""
    emu = emulator("--fault", "connect=status:429,retry_after=2")
    with pytest.raises(HandshakeRejected) as refused:  # the client keeps what the refusal said
        ConsumerSocket.connect(ws_url(emu.url), lp_token(emu.url), timeout=5)
    assert refused.value.status == 429 and refused.value.retry_after == 2.0
    emu.reset_ledger()
    run = run_locust(["-u", "5", "-r", "50", "-t", "5s", "--lp-hold", "0.5", *FAST], tmp_path, target=emu.url)
    connects = emu.ledger()["endpoints"]["connect"]
    assert 5 <= connects["received"] <= 5 * 3, connects  # without it: thousands
    assert connects["errors"] == {"429": connects["received"]}
    backoff = run.summary["backoff"]
    assert backoff["throttled"] == connects["received"] and backoff["pause_s"] >= 2.0 * connects["received"]


def _emulator_of(run: Run) -> tuple[str, int]:
    found = run.wait_for(r"embedded emulator at (\S+) \(pid (\d+)\)")
    return found.group(1), int(found.group(2))


def _ledger(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/admin/ledger", timeout=5) as answer:
        return json.loads(answer.read())


def _wait_for_sessions(url: str, closed: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _ledger(url)["conversations"]["closed"] < closed:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_killed_target_is_tried_at_the_breakers_rate_and_the_log_says_so(tmp_path: Path) -> None:
    """With pauses of 0.05 s, 5 users would try ~50 times a second; once the breaker trips, one probe per
    5 s (then 10 s) goes: the attempts after the kill stay a few dozen, and the log says why, once."""
    run = Run(["-u", "5", "-r", "50", "-t", "8s", "--lp-hold", "0.3", "--lp-ping-interval", "0.1", *FAST], tmp_path)
    url, pid = _emulator_of(run)
    _wait_for_sessions(url, closed=10)
    os.kill(pid, signal.SIGKILL)  # the emulator the run started; its pid is in the run's own log
    killed = time.monotonic()
    run.wait_for("TARGET DOWN")
    tripped_after = time.monotonic() - killed
    assert run.finish() == 1, run.output[-3000:]
    output, summary = run.output, run.summary
    assert output.count("TARGET DOWN") == 1, output[-3000:]  # once, not per user or per probe
    down = next(line for line in output.splitlines() if "TARGET DOWN" in line)
    assert "exited with status -9, killed by SIGKILL" in down and f"pid {pid}" in down, down
    assert "got no answer" in down and "users pause" in down, down
    refused = sum(s["failures"] for s in summary["steps"].values() if s["phase"] != "session")
    refused += sum((summary["conversations"]["cleanup"]["failures"] or {}).values())
    assert summary["backoff"]["breaker_trips"] == 1 and summary["backoff"]["breaker_waits"] > 0
    assert tripped_after < 3.0, tripped_after
    assert refused <= 40, (refused, summary["steps"], summary["conversations"])  # the policy alone: ~350


def test_on_target_down_abort_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    run = Run(["-u", "3", "-r", "30", "-t", "60s", "--lp-hold", "0.3", "--lp-on-target-down", "abort", *FAST], tmp_path)
    url, pid = _emulator_of(run)
    _wait_for_sessions(url, closed=3)
    os.kill(pid, signal.SIGKILL)
    assert run.finish(timeout=30) == 2, run.output[-3000:]  # long before the 60 s time limit
    assert "aborting the run (--lp-on-target-down abort)" in run.output
    assert run.summary["run"]["end_reason"] == "target down"
    jsonschema.validate(run.summary, load_schema())


def test_the_log_says_when_the_target_is_back(emulator, tmp_path: Path) -> None:
    """Every call reset (the IDP's and the handshake): the breaker trips; faults cleared: its probe
    gets an answer, the log says the target is back, and sessions complete again."""
    emu = emulator()
    run = Run(["-u", "3", "-r", "30", "-t", "30s", "--lp-hold", "0.2", *FAST], tmp_path, target=emu.url)
    emu.wait_until(lambda led: led["conversations"]["closed"] >= 3, timeout=20)
    emu.set_faults({"faults": {"anonymous-authorize": ["reset"], "connect": ["reset"]}})
    run.wait_for("TARGET DOWN")
    emu.set_faults({})
    back = run.wait_for(r"is back: it answers again after ([\d.]+) s down").group(1)
    closed = emu.ledger()["conversations"]["closed"]
    emu.wait_until(lambda led: led["conversations"]["closed"] > closed, timeout=10)  # sessions go on
    run.proc.send_signal(signal.SIGTERM)  # the run's own stop: reports are still written
    run.finish()
    assert 4.0 <= float(back) <= 8.0, back  # the first probe goes 5 s after the trip
    backoff = run.summary["backoff"]
    assert backoff["breaker_trips"] == 1 and backoff["breaker_recoveries"] == 1, backoff
