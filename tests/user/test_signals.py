"""Ways out of a run that used to lie or lose it: SIGTERM, a second Ctrl-C, a reports folder that fails.

Real ``locust`` processes on the embedded emulator; each waits on a line the run prints (Locust's
stats table, the harness's own "stopping" line), never on a sleep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from harness.reports import exitcodes
from tests.user.live import Live, clean_env
from tests.user.runs import run_locust

BREAKS = ["--lp-threshold", "connect:p50<0.001"]  # a rule that breaks on any run
HOLDING = r"^session\s+time-to-conversation\s+([4-9]|\d\d+)\s"  # stats table: all 4 users have their conversation


def _folder(reports: Path) -> Path:
    folders = [p for p in reports.iterdir() if (p / "summary.json").is_file()]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.mark.parametrize(
    ("stop_is_success", "expected"), [(False, exitcodes.INTERRUPTED), (True, exitcodes.THRESHOLDS_FAILED)]
)
def test_sigterm_exits_interrupted_yet_judges_the_partial_run(
    tmp_path: Path, stop_is_success: bool, expected: int
) -> None:
    """The thresholds are evaluated and written either way; the exit code says the run was stopped
    from outside, unless LP_STOP_IS_SUCCESS says that stop is its normal end (then: the verdict)."""
    env = clean_env(tmp_path, {"LP_STOP_IS_SUCCESS": "true"} if stop_is_success else None)
    args = ["--headless", "-u", "4", "-r", "4", "-t", "60s", "--lp-hold", "0.3", "--lp-ping-interval", "0.1", *BREAKS]
    with Live(args, env) as run:
        run.wait_for(HOLDING)
        run.signal(signal.SIGTERM)
        code = run.finish(timeout=30)
    assert code == expected, run.output[-3000:]
    folder = _folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["end_reason"] == "sigterm"
    assert summary["run"]["settings"]["stop_is_success"] is stop_is_success
    assert summary["thresholds"]["passed"] is False and (folder / "junit.xml").is_file()
    assert (folder / "report.html").is_file() and "Traceback" not in run.output


def test_a_second_ctrl_c_during_a_slow_stop_still_writes_the_reports(tmp_path: Path) -> None:
    """Closes hang for 30 s; the first Ctrl-C starts the stop, the second writes every report at once."""
    args = [
        "--headless", "-u", "4", "-r", "4", "-t", "60s", "--stop-timeout", "60", "--lp-hold", "60",
        "--lp-emulator-args", "--fault cm.UpdateConversationField=hang:30",
    ]  # fmt: skip
    with Live(args, clean_env(tmp_path)) as run:
        run.wait_for(HOLDING)  # every user holds a conversation: the stop has closes to wait for
        run.signal(signal.SIGINT)
        run.wait_for("stopping: users close their conversations")
        second = time.monotonic()
        run.signal(signal.SIGINT)
        code = run.finish(timeout=30)
        took = time.monotonic() - second
    output = run.output
    assert code == exitcodes.INTERRUPTED, output[-3000:]
    assert took < 15, took  # not the 30 s the hanging closes would take
    assert "SIGINT again" in output and "Traceback" not in output and "KeyboardInterrupt" not in output
    folder = _folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["end_reason"] == "sigint"
    assert summary["steps"]["time-to-conversation"]["count"] >= 4
    for name in ("report.html", "summary.txt", "locust_report.html", "locust_stats.csv"):
        assert (folder / name).is_file(), name


def _unwritable(tmp_path: Path) -> Path:
    """A folder the test's user cannot write in (as root, chmod does not stop us: sysfs does)."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_write("/sys"):
            pytest.skip("no folder here that root cannot write")
        return Path("/sys")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def _can_write(folder: str) -> bool:
    try:
        probe = Path(folder) / ".lp-probe"
        probe.write_text("")
        probe.unlink()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["a file", "unwritable"])
def test_a_bad_reports_folder_is_one_line_and_exit_2_before_any_user(tmp_path: Path, kind: str) -> None:
    if kind == "a file":
        target = tmp_path / "reports.txt"
        target.write_text("not a folder")
    else:
        target = _unwritable(tmp_path)
    run = run_locust(["-u", "2", "-r", "2", "-t", "5s"], tmp_path / "unused", env={"LP_REPORTS_DIR": str(target)})
    assert run.returncode == exitcodes.ERROR, run.output[-2000:]
    lines = [line for line in run.output.splitlines() if "--lp-reports-dir" in line]
    assert len(lines) == 1 and "configuration error" in lines[0] and str(target) in lines[0], run.output[-2000:]
    assert "Traceback" not in run.output
    assert "embedded emulator" not in run.output and "Ramping" not in run.output  # checked before anything started


def test_reports_that_cannot_be_written_at_the_end_exit_2_not_0(tmp_path: Path) -> None:
    """The folder was fine at the start and is gone (a file in its place) at the end: one line, exit 2."""
    reports = tmp_path / "reports"
    args = ["--headless", "--only-summary", "-u", "2", "-r", "2", "-t", "2s", "--lp-hold", "0.2"]
    with Live(args, clean_env(reports)) as run:
        run.wait_for("All users spawned")
        shutil.rmtree(reports)
        reports.write_text("a file where the reports folder was")
        code = run.finish(timeout=30)
    assert code == exitcodes.ERROR, run.output[-3000:]
    lines = [line for line in run.output.splitlines() if re.search(r"could not write the reports to", line)]
    assert len(lines) == 1 and "--lp-reports-dir" in lines[0], run.output[-3000:]
    assert "Traceback" not in run.output
