"""The release gate on real runs: thresholds and exit codes, JUnit, SIGTERM, compare of two runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.reports import compare, exitcodes
from tests.user.runs import LOCUST, ROOT, run_locust

RUN = ["-u", "6", "-r", "6", "-t", "5s", "--stop-timeout", "5", "--lp-hold", "0.3", "--lp-ping-interval", "0.1"]
LATENCY_METRICS = ("p50", "p95", "mean")


def test_a_threshold_that_holds_and_one_that_breaks(emulator, tmp_path: Path) -> None:
    url = emulator().url
    holds = run_locust([*RUN, "--lp-threshold", "authenticate:p95<5s"], tmp_path / "holds", target=url)
    assert holds.returncode == exitcodes.OK, holds.output[-2000:]
    assert holds.summary["thresholds"]["passed"] is True

    breaks = run_locust(
        [*RUN, "--lp-threshold", "authenticate:p95<5s", "--lp-threshold", "connect:p50<0.001"],
        tmp_path / "breaks",
        target=url,
    )
    assert breaks.returncode == exitcodes.THRESHOLDS_FAILED, breaks.output[-2000:]
    section = breaks.summary["thresholds"]
    assert section["passed"] is False
    assert [r["ok"] for r in section["rules"]] == [True, False]
    suite = ET.parse(breaks.run_folder / "junit.xml").getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == 2 and len(suite.findall(".//testcase/failure")) == 1
    assert "FAIL" in (breaks.run_folder / "summary.txt").read_text()


def test_bad_threshold_is_a_configuration_error(tmp_path: Path) -> None:
    run = run_locust([*RUN, "--lp-threshold", "authenticate:p95<<fast"], tmp_path)
    assert run.returncode == exitcodes.ERROR and "threshold" in run.output and "Traceback" not in run.output


def test_abort_on_fail_stops_the_run_early(tmp_path: Path) -> None:
    run = run_locust(
        [
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "60s",
            "--lp-hold",
            "0.2",
            "--lp-threshold",
            "connect:p50<0.001;abortOnFail;delayAbortEval=1s",
        ],
        tmp_path,
    )
    summary = run.summary
    assert run.returncode == exitcodes.THRESHOLDS_FAILED, run.output[-2000:]
    assert summary["run"]["end_reason"] == "threshold abort"
    assert summary["run"]["duration_s"] < 30 and summary["thresholds"]["passed"] is False


@pytest.mark.parametrize(("signum", "reason"), [(signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")])
def test_a_signal_mid_run_still_writes_reports(tmp_path: Path, signum: int, reason: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
    env.update({"PYTHONUNBUFFERED": "1", "LP_REPORTS_DIR": str(tmp_path)})
    proc = subprocess.Popen(
        [*LOCUST, "--headless", "-u", "4", "-r", "4", "-t", "60s", "--lp-hold", "5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the event we wait for: all users are running
            if "All users spawned" in line:
                break
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["end_reason"] == reason, output[-2000:]
    assert (folder / "report.html").read_text().count(reason) >= 1
    assert (folder / "locust_report.html").is_file()
    assert summary["sockets"]["open"] == 0  # users closed their sockets before the emulator went away


def _verdicts(result: dict, step: str) -> dict[str, str]:
    return {row["metric"]: row["verdict"] for row in result["steps"][step]["metrics"]}


def test_compare_flags_injected_latency_and_nothing_when_nothing_changed(emulator, tmp_path: Path) -> None:
    # The two identical runs go side by side, so the machine's own load (other processes, a busy CI
    # runner) falls on both alike: what is compared is the runs, not the moments they ran at.
    urls = {"base": emulator().url, "same": emulator().url}
    with ThreadPoolExecutor(2) as pool:
        runs = {name: pool.submit(run_locust, RUN, tmp_path / name, target=url) for name, url in urls.items()}
    base, same = (runs[name].result().summary for name in ("base", "same"))
    slow = run_locust(RUN, tmp_path / "slow", target=emulator("--latency", "authenticate=50").url).summary

    unchanged = compare.compare(base, same)
    assert unchanged["regressions"] == [] and unchanged["improvements"] == [], (
        unchanged["regressions"],
        unchanged["improvements"],
    )

    result = compare.compare(base, slow)
    auth = _verdicts(result, "authenticate")
    assert auth["p50"] == "regressed" and auth["p95"] == "regressed", auth
    for step in ("anonymous-authorize", "connect", "request-conversation", "close-conversation"):
        verdicts = _verdicts(result, step)
        assert all(verdicts[m] != "regressed" for m in LATENCY_METRICS), (step, verdicts)
