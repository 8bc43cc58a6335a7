"""The spike, breakpoint and arrival-rate shapes: real headless runs on the emulator, and their arithmetic.

Each run is seconds long with a few users. The breakpoint's knee is made by the target: an
emulator whose authenticate latency the test raises as each step starts (it reads the step's log
line, so the latency follows the steps, not a clock); the arrival rate is counted three ways (the
pacer, the harness's sessions, the emulator's ledger).
"""

from __future__ import annotations

import json
import math
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from locust import argument_parser

from harness.options import add_arguments
from harness.reports import exitcodes
from harness.reports.loading import load_schema
from harness.reports.thresholds import parse_cli_rule
from harness.reports.window import window_summary
from harness.settings import Settings, SettingsError
from harness.user.arrival import Plan
from harness.user.breakpoint import BreakpointRun
from tests.user.live import Live, clean_env, free_port
from tests.user.runs import ROOT, run_locust

QUICK_SESSION = ["--stop-timeout", "3", "--lp-request-timeout", "2", "--lp-retry-pauses", "0.05"]


def _parse(args: list[str]):
    parser = argument_parser.get_parser()
    add_arguments(parser)
    target = ["--lp-account", "a", "--lp-idp", "http://127.0.0.1:1", "--lp-asyncmessagingent", "http://127.0.0.1:1"]
    return parser.parse_args([*target, *args])


@pytest.mark.parametrize("name", ["spike", "breakpoint", "arrival"])
def test_profiles_name_their_scenario_and_are_valid_settings(name: str) -> None:
    conf = ROOT / "scenarios" / f"{name}.conf"
    assert f"lp-scenario = {name}" in conf.read_text()
    settings = Settings.from_options(_parse(["--config", str(conf)]))
    assert settings.scenario == name
    assert (settings.arrival_rate is not None) == (name == "arrival")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--lp-scenario", "arrival"], "--lp-arrival-rate"),
        (["--lp-arrival-rate", "fast"], "--lp-arrival-rate"),
        (["--lp-arrival-rate", "0"], "--lp-arrival-rate"),
        (["--lp-arrival-rate", "5:50"], "-t / --run-time"),
        (["--lp-scenario", "breakpoint"], "--lp-threshold"),
        (["--lp-breakpoint-step-time", "soon"], "--lp-breakpoint-step-time"),
    ],
)
def test_bad_shape_settings_name_the_fix(args: list[str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_options(_parse(args))
    assert named in str(info.value)


def test_arrival_plan_spreads_arrivals_evenly_and_ramps() -> None:
    constant = Plan(10.0, 10.0)
    assert [round(constant.time_of(n + 0.5), 3) for n in range(3)] == [0.05, 0.15, 0.25]
    ramp = Plan(2.0, 20.0, ramp_s=6.0)
    assert math.isclose(ramp.arrivals_by(6.0), 66.0) and math.isclose(ramp.arrivals_by(7.0), 86.0)
    for n in (0.5, 10.0, 65.9, 70.0):
        assert math.isclose(ramp.arrivals_by(ramp.time_of(n)), n, rel_tol=1e-9)
    down = Plan(20.0, 0.0, ramp_s=2.0)
    assert math.isclose(down.arrivals_by(down.time_of(15.0)), 15.0) and down.time_of(21.0) is None


def _summary(authenticate_ms: list[float], sessions: int, open_sockets: int) -> dict:
    """A cumulative summary whose authenticate step saw these latencies (precise histogram)."""
    from harness.reports import loghist

    hist: dict[str, int] = {}
    for ms in authenticate_ms:
        key = str(loghist.bucket(ms))
        hist[key] = hist.get(key, 0) + 1
    step = {"phase": "token", "count": len(authenticate_ms), "failures": 0, "mean_ms": 1.0, "histogram_log": hist}
    return {
        "run": {"users": 1},
        "steps": {"authenticate": step},
        "phases": {"token": {"sessions": sessions, "failures": 0, "fail_ratio": 0.0, "categories": {}}},
        "sockets": {"open": open_sockets, "peak_open": open_sockets, "opened": sessions, "drops": 0,
                    "server_closes": {}, "drops_per_hour": 0.0},
        "pings": {"sent": 0, "answered": 0, "timeouts": 0},
    }  # fmt: skip


def test_a_window_is_judged_on_its_own_requests() -> None:
    before = _summary([500.0] * 100, 100, 3)  # a slow first hour ...
    after = _summary([500.0] * 100 + [10.0] * 100, 200, 5)  # ... then a fast window
    window = window_summary(before, after, from_s=10.0, to_s=20.0, users=5)
    step = window["steps"]["authenticate"]
    assert step["count"] == 100 and step["p99_ms"] < 11 and math.isclose(step["rps"], 10.0)
    assert window["phases"]["token"]["sessions"] == 100 and window["sockets"]["open"] == 5
    assert window["run"]["duration_s"] == 10.0 and window["run"]["users"] == 5


def _steps(rules_text: str, opens: list[int], times: list[float]) -> tuple[list[int | None], dict]:
    """A 4-step breakpoint to 8 users whose step windows end with ``opens`` sockets open."""
    run = BreakpointRun(steps=4, step_s=10.0, max_users=8)
    snapshots = iter([_summary([1.0], 1, n) for n in opens])
    users = [run.advance(t, lambda: next(snapshots), [parse_cli_rule(rules_text)]) for t in times]
    return users, run.section()


def test_breakpoint_stops_at_the_first_broken_step_and_names_the_knee() -> None:
    users, section = _steps("sockets:open<7", [2, 4, 8], [0, 5, 10, 20, 30])
    assert users == [2, 2, 4, 6, None]  # step 3 (6 users) ended with 8 sockets open: broken
    assert section["verdict"] == "knee" and (section["knee_users"], section["broke_at_users"]) == (4, 6)
    assert [s["status"] for s in section["steps"]] == ["held", "held", "broke"]
    assert section["broken_by"][0]["rule"] == "sockets: open < 7" and section["broken_by"][0]["value"] == 8
    failed = {"rules": [{}], "passed": False}  # the whole run's verdict: broken, as the last step was
    assert exitcodes.run_exit_code({"breakpoint": section, "thresholds": failed}) == exitcodes.OK


def test_breakpoint_that_never_breaks_names_the_top_step_and_one_that_breaks_at_once_fails() -> None:
    users, section = _steps("sockets:open<100", [2, 4, 6, 8], [0, 10, 20, 30, 40])
    assert users == [2, 4, 6, 8, None] and section["verdict"] == "never broke" and section["knee_users"] == 8
    users, section = _steps("sockets:open<1", [2], [0, 10])
    assert users == [2, None] and section["verdict"] == "no step held" and section["knee_users"] is None
    assert exitcodes.run_exit_code({"breakpoint": section}) == exitcodes.THRESHOLDS_FAILED


def _target(url: str) -> dict[str, str]:
    return {"LP_ACCOUNT": "shape-test", "LP_IDP": url, "LP_ASYNCMESSAGINGENT": url}


def _run_summary(reports: Path) -> dict:
    folder = next(p for p in sorted(reports.iterdir()) if (p / "summary.json").is_file())
    summary = json.loads((folder / "summary.json").read_text())
    jsonschema.validate(summary, load_schema())
    return summary


def _run_page(reports: Path) -> str:
    """The run's report.html: the load shape's section is there, in a page that parses as XML."""
    folder = next(p for p in sorted(reports.iterdir()) if (p / "report.html").is_file())
    html = (folder / "report.html").read_text()
    ET.fromstring(html.split("\n", 1)[1])
    return html


def test_spike_jumps_from_the_baseline_and_comes_back(tmp_path: Path) -> None:
    run = run_locust(
        ["-u", "10", "-r", "2", "-t", "7s", "--lp-scenario", "spike", "--lp-hold", "0.3",
         "--lp-timeline-interval", "0.5", *QUICK_SESSION],
        tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    assert summary["run"]["scenario"] == "spike"
    rows = [(r["t_s"], r["users"]) for r in summary["timeline"]["rows"] if r["users"]]  # not the row after the stop
    users = [u for _, u in rows]
    top = [t for t, u in rows if u == 10]
    assert users[0] == 2 and max(users) == 10, rows  # baseline 20 % of -u, then all of -u
    # the spike: from 30 % of the run (2.1 s; rows are 0.5 s apart) to 60 % (4.2 s; a shape ticks once a second)
    assert 2.1 - 0.5 <= top[0] <= 4.2 and top[-1] <= 4.2 + 2.0, rows
    after = [u for t, u in rows if t > top[-1]]
    assert after and after[-1] == 2 and set(after) <= set(range(2, 10)), rows  # back down to the baseline
    assert set(users[: users.index(10)]) <= {1, 2}, rows  # the baseline before it (ramped at -r 2)


def test_breakpoint_finds_the_knee_as_latency_ramps_in(emulator, tmp_path: Path) -> None:
    emu = emulator()
    args = ["--headless", "--only-summary", "-u", "8", "-r", "50", "--lp-scenario", "breakpoint",
            "--lp-breakpoint-steps", "4", "--lp-breakpoint-step-time", "2", "--lp-hold", "0.2",
            "--lp-threshold", "authenticate:p95<400", *QUICK_SESSION]  # fmt: skip
    with Live(args, clean_env(tmp_path, _target(emu.url))) as locust:
        for step in (2, 3, 4):  # the target slows down as the steps grow: 0, 150, 300, 450 ms
            locust.wait_for(rf"breakpoint: step {step} of 4, {2 * step} users", timeout=30)
            emu.set_faults({"latency": {"authenticate": str(150 * (step - 1))}})
        code = locust.finish(timeout=60)
    assert code == exitcodes.OK, locust.output[-3000:]  # finding the knee is the purpose
    summary = _run_summary(tmp_path)
    bp = summary["breakpoint"]
    assert summary["run"]["end_reason"] == "breakpoint" and bp["verdict"] == "knee", bp
    assert [(s["users"], s["status"]) for s in bp["steps"]] == [(2, "held"), (4, "held"), (6, "held"), (8, "broke")]
    assert (bp["knee_users"], bp["knee_step"], bp["broke_at_users"]) == (6, 3, 8)
    assert [b["rule"] for b in bp["broken_by"]] == ["authenticate: p95 < 400"] and bp["broken_by"][0]["value"] >= 440
    assert all(s["window_s"] >= 2.0 for s in bp["steps"]), bp["steps"]  # each judged on its whole window
    assert "breakpoint: knee at 6 users (step 3 of 4); 8 users broke authenticate: p95 < 400" in locust.output
    assert "breakpoint: step 4 (8 users) broke authenticate: p95 < 400" in locust.output  # the log line, at once
    page = _run_page(tmp_path)
    assert "<h2>Breakpoint: knee</h2>" in page and "knee at 6 users (step 3 of 4); 8 users broke authenticate: p95 &lt; 400" in page
    assert page.count('<tr class="improved"><td>') == 3 and page.count('<tr class="regressed"><td>') == 1  # the steps
    assert "<td>8</td>" in page and "<td>BROKE</td>" in page


def test_breakpoint_that_never_breaks_says_so(tmp_path: Path) -> None:
    run = run_locust(
        ["-u", "6", "-r", "50", "--lp-scenario", "breakpoint", "--lp-breakpoint-steps", "3",
         "--lp-breakpoint-step-time", "1", "--lp-hold", "0.2", "--lp-threshold", "phase:token:fail_ratio<50%",
         *QUICK_SESSION],
        tmp_path,
    )  # fmt: skip
    assert run.returncode == exitcodes.OK, run.output[-3000:]
    bp = run.summary["breakpoint"]
    assert bp["verdict"] == "never broke" and bp["knee_users"] == 6 and bp["broke_at_users"] is None, bp
    assert [s["users"] for s in bp["steps"]] == [2, 4, 6] and run.summary["run"]["end_reason"] == "completed"
    assert "breakpoint: never broke: every step held up to 6 users" in run.output


def test_arrival_rate_is_kept_whatever_the_sessions_hold(emulator, tmp_path: Path) -> None:
    emu = emulator()
    run = run_locust(
        ["-u", "20", "-r", "100", "-t", "6s", "--lp-scenario", "arrival", "--lp-arrival-rate", "10",
         "--lp-hold", "0.4", "--lp-threshold", "arrival:dropped_ratio<1%", "--lp-threshold", "arrival:achieved_ratio>90%",
         *QUICK_SESSION],
        tmp_path,
        target=emu.url,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    arrival = summary["arrival"]
    assert arrival["kept"] and arrival["dropped"] == 0 and arrival["warning"] is None, arrival
    assert abs(arrival["achieved_rate"] - 10.0) <= 0.5 and arrival["duration_s"] >= 5, arrival  # within 5 %
    assert abs(arrival["started"] - 10.0 * arrival["duration_s"]) <= 1.0, arrival
    preflight = summary["run"]["preflight"]["anonymous-authorize"]["sent"]
    authorized = emu.ledger()["endpoints"]["anonymous-authorize"]["received"] - preflight
    assert arrival["started"] == summary["phases"]["token"]["sessions"] == authorized, (arrival, authorized)
    assert 1 <= arrival["max_concurrent"] < 20  # sessions at once are a result (about rate x length), not -u
    assert "arrival: 10.0/s asked" in run.output and ": kept" in run.output
    gate = {r["rule"]: r for r in summary["thresholds"]["rules"]}  # the scope reads this very section
    assert summary["thresholds"]["passed"] and gate["arrival: dropped_ratio < 1%"]["value"] == 0.0, gate
    assert gate["arrival: achieved_ratio > 90%"]["value"] == arrival["achieved_rate"] / arrival["target_rate"], gate


def test_arrival_rate_it_cannot_keep_is_said_in_the_log_the_summary_and_the_terminal(tmp_path: Path) -> None:
    run = run_locust(
        ["-u", "3", "-r", "100", "-t", "4s", "--lp-scenario", "arrival", "--lp-arrival-rate", "10",
         "--lp-hold", "2", *QUICK_SESSION],
        tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    arrival = run.summary["arrival"]
    assert not arrival["kept"] and arrival["dropped"] > 0 and arrival["max_concurrent"] == 3, arrival
    assert arrival["started"] + arrival["dropped"] == arrival["due"], arrival
    assert arrival["achieved_rate"] < 3.0 and "raise -u" in arrival["warning"], arrival  # 3 users of ~2 s sessions
    assert "WARNING/lp-harness: arrival rate not kept: an arrival" in run.output
    text = (run.run_folder / "summary.txt").read_text()
    assert "NOT KEPT" in text and f"{arrival['dropped']} of {arrival['due']} arrivals" in text
    page = _run_page(tmp_path)
    assert "<h2>Arrival rate: NOT KEPT</h2>" in page and '<div class="box bad">arrival: 10.0/s asked' in page
    assert f'<td class="l">dropped</td><td class="l">{arrival["dropped"]} (' in page
    assert f'<td class="l">3 of {arrival["users"]} users</td>' in page


def _await_ui(url: str, locust: Live, timeout_s: float = 30.0) -> None:
    """The UI's server binds a moment after its last log line: ask until it answers (bounded; no line to await)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline or locust.proc.poll() is not None:
                raise AssertionError(f"the web UI did not answer:\n{locust.output[-3000:]}") from None
            time.sleep(0.05)  # a refused connection returns at once: back off a little between tries


def test_arrival_shape_from_the_web_ui_class_picker(tmp_path: Path) -> None:
    port = free_port()
    args = ["-f", f"{ROOT / 'locustfile.py'},{ROOT / 'scenarios' / 'shapes.py'}", "--class-picker",
            "--web-host", "127.0.0.1", "--web-port", str(port), *QUICK_SESSION]  # fmt: skip
    with Live(args, clean_env(tmp_path)) as locust:
        locust.wait_for("using the embedded emulator", timeout=30)  # init is done; the UI's server starts next
        _await_ui(f"http://127.0.0.1:{port}/", locust)
        form = {"user_classes": "ConsumerUser", "shape_class": "ArrivalShape", "user_count": "10",
                "spawn_rate": "100", "run_time": "3s", "lp_arrival_rate": "5", "lp_hold": "0.3"}  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/swarm", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["success"]
        locust.wait_for("Shape test stopping", timeout=30)
        locust.signal(signal.SIGTERM)  # the web UI waits for another test: SIGTERM ends it, final reports written
        locust.finish(timeout=60)
    summary = _run_summary(tmp_path)
    arrival = summary["arrival"]
    assert summary["run"]["scenario"] == "arrival" and arrival["kept"], arrival
    assert abs(arrival["started"] - 5.0 * arrival["duration_s"]) <= 1.0, arrival
