"""The load generator's health in every report: the run-long record, the verdict, the gate on it.

The pure part (periods, their union over processes, the bounded samples) on made-up numbers; the
verdict on real locust processes: a healthy short run reads trustworthy, and one whose gevent loop
is held busy on purpose (tests/user/stall_locustfile.py) reads saturated, at the right time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.reports.loading import load_schema
from harness.user import loadhealth as LH
from tests.user.runs import QUICK, run_locust


def _part(pid: int, health: LH.RunHealth) -> dict:
    return {"id": f"worker {pid}", "role": "worker", "pid": pid, "fd_limit": 20000, "run": health.to_dict()}


def test_saturated_samples_make_periods_and_their_union_is_the_share_of_the_run() -> None:
    a, b = LH.RunHealth(started_at=100.0), LH.RunHealth(started_at=100.0)
    for t in (102, 104, 106):  # saturated 100-106 (each sample covers the 2 s before it)
        a.record_sample(float(t), 2.0, 95.0, 10, 5, ["CPU 95% >= 90%"])
    a.record_sample(108.0, 2.0, 20.0, 10, 5, None)
    a.record_sample(120.0, 2.0, 97.0, 10, 5, ["CPU 97% >= 90%"])  # a second period, 118-120
    b.record_sample(105.0, 2.0, 30.0, 10, 5, ["event loop 80 ms late on average >= 50 ms"])  # 103-105
    for lag in (1.0, 2.0, 300.0):
        a.record_lag(lag)
    assert [p[:2] for p in a.periods] == [[100.0, 106.0], [118.0, 120.0]]
    out = LH.section([_part(1, a), _part(2, b)], 100.0, 140.0, [], 10.0, {})
    assert out["verdict"] == LH.SATURATED
    assert [(p["from_s"], p["to_s"]) for p in out["saturated_periods"]] == [(0.0, 6.0), (18.0, 20.0)]
    assert out["saturated_periods"][0]["processes"] == ["worker 1", "worker 2"]
    assert out["saturated_s"] == 8.0 and out["saturated_share"] == 0.2  # the union: 8 s of 40
    row = out["processes"][0]
    assert row["loop_lag_max_ms"] == 300.0 and row["loop_lag_p99_ms"] == 300.0 and row["cpu_percent_max"] == 97.0
    assert any(r.startswith("worker 2: event loop") for r in out["reasons"]), out["reasons"]
    healthy = LH.section([_part(3, LH.RunHealth(started_at=100.0))], 100.0, 140.0, [], 10.0, {})
    assert healthy["verdict"] == LH.TRUSTWORTHY and healthy["saturated_share"] == 0.0


def test_the_record_stays_bounded_over_an_hours_long_run() -> None:
    health = LH.RunHealth(started_at=0.0)
    for n in range(3 * LH.MAX_PERIODS):  # a saturated sample every other 2 s interval: all apart
        health.record_sample(4.0 * n + 2.0, 2.0, 95.0, 1, 1, ["CPU 95% >= 90%"])
    assert len(health.periods) == LH.MAX_PERIODS
    assert health.periods[0][0] == 0.0 and health.periods[-1][1] == 4.0 * (3 * LH.MAX_PERIODS - 1) + 2.0
    for lag in range(0, 600000, 7):  # up to 60 s late
        health.record_lag(lag / 10.0)
    assert len(health.lag_hist) < 340
    samples: list[dict] = []
    for t in range(8 * 3600 // 10):  # 8 hours at one sample each 10 s
        LH.add_sample(samples, {"t_s": t * 10.0, "cpu_percent": t % 7, "loop_lag_ms": 0.0, "loop_lag_max_ms": 0.0,
                                "rss_bytes": t, "fds": 1, "saturated": t == 5})
    assert len(samples) <= LH.MAX_SAMPLES and samples[-1]["rss_bytes"] == 8 * 3600 // 10 - 1
    assert sum(s["saturated"] for s in samples) == 1  # merged, not lost


def test_a_healthy_run_is_trustworthy_and_says_so(tmp_path: Path) -> None:
    gate = ["--lp-threshold", "load_generator:saturated_share<1%", "--lp-threshold", "load_generator:loop_lag_p99<50ms"]
    run = run_locust([*QUICK, *gate], tmp_path)
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    generator = summary["load_generator"]
    assert generator["verdict"] == "trustworthy" and generator["saturated_periods"] == [], generator
    (local,) = generator["processes"]
    assert local["id"] == "local" and local["loop_lag_p99_ms"] is not None and local["rss_max_bytes"] > 0
    assert generator["samples"] and summary["thresholds"]["passed"], summary["thresholds"]
    assert "load generator: trustworthy" in run.output


def test_a_starved_generator_is_saturated_when_it_was_and_the_gate_refuses_the_run(tmp_path: Path) -> None:
    gate = ["--lp-threshold", "load_generator:saturated_share<1%"]
    run = run_locust(
        ["-f", "tests/user/stall_locustfile.py", *QUICK, "-t", "6s", *gate], tmp_path, env={"LP_TEST_STALL_S": "3"}
    )
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    generator = summary["load_generator"]
    assert generator["verdict"] == "saturated", generator
    (period,) = generator["saturated_periods"]
    assert 0.0 <= period["from_s"] <= 2.0 and 3.0 <= period["to_s"] <= 7.0, period  # the stall: 1 s to 4 s in
    assert period["processes"] == ["local"] and period["reasons"], period
    assert generator["processes"][0]["loop_lag_max_ms"] >= 2500.0
    assert not summary["thresholds"]["passed"] and run.returncode == 3
    assert "load generator: SATURATED" in run.output


def test_the_collectors_pauses_are_in_the_report_and_a_gate_can_refuse_them(tmp_path: Path) -> None:
    """A full collection over a big heap stops the loop: its length is the run's longest GC pause."""
    took = tmp_path / "gc-took-ms"
    gate = ["--lp-threshold", "load_generator:gc_pause_max<1ms"]
    env = {"LP_TEST_STALL_S": "0", "LP_TEST_GC_OBJECTS": "400000", "LP_TEST_GC_REPORT": str(took)}
    run = run_locust(["-f", "tests/user/stall_locustfile.py", *QUICK, "-t", "5s", *gate], tmp_path, env=env)
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    (local,) = summary["load_generator"]["processes"]
    collected_ms = float(took.read_text())  # what the locustfile's own gc.collect() took
    assert local["gc_full_collections"] >= 1, local
    assert local["gc_pause_max_ms"] >= 0.9 * collected_ms, (local, collected_ms)
    assert local["gc_pause_total_ms"] >= local["gc_pause_max_ms"]
    assert summary["load_generator"]["total"]["gc_pause_max_ms"] == local["gc_pause_max_ms"]
    assert not summary["thresholds"]["passed"] and run.returncode == 3
    assert f"longest GC pause {local['gc_pause_max_ms']:.0f} ms" in run.output


def _duty_run(tmp_path: Path, core: int) -> dict:
    env = {"LP_TEST_STALL_S": "0", "LP_TEST_DUTY": "0.4", "LP_TEST_PIN_CORE": str(core)}
    run = run_locust(["-f", "tests/user/stall_locustfile.py", *QUICK, "-t", "8s"], tmp_path, env=env)
    jsonschema.validate(run.summary, load_schema())
    return run.summary["load_generator"]


def test_a_generator_sharing_its_core_with_a_busy_process_is_starved_and_says_so(tmp_path: Path) -> None:
    """The same 40 % of work on one core: alone, trustworthy; beside a busy process, starved.

    The starved process's CPU reads about 40 %, under the 90 % line, and its loop is rarely 50 ms late:
    only the loop's busy share against its CPU shows the half core it lost."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs 2 cores: the busy process and the generator share one, the emulator has the other")
    core = cores[-1]
    alone = _duty_run(tmp_path / "alone", core)
    (local,) = alone["processes"]
    assert alone["verdict"] == "trustworthy", alone["reasons"]
    assert 25.0 <= local["loop_busy_percent_max"] < 75.0, local  # the duty is seen, and is not saturation
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {core})
        shared = _duty_run(tmp_path / "shared", core)
    finally:
        hog.kill()  # the busy process this test started, by its handle
        hog.wait()
    assert shared["verdict"] == "saturated" and shared["saturated_share"] >= 0.5, shared
    assert any("starved of CPU" in reason for reason in shared["reasons"]), shared["reasons"]
    (local,) = shared["processes"]
    assert local["cpu_percent_max"] < 90.0, local  # the CPU line alone would have called it trustworthy
