"""The command lines: compare / trend / baseline promote / thresholds check / report, and their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.reports import exitcodes
from harness.reports.cli import (
    main,
    main_baseline,
    main_compare,
    main_promote,
    main_report,
    main_thresholds,
    main_trend,
)
from tests.reports.synth import make_summary

ROOT = Path(__file__).resolve().parents[2]


def write_run(folder: Path, summary: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "summary.txt").write_text("table\n")
    (folder / "locust_report.html").write_text("<html></html>\n")
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": write_run(tmp_path / "runs" / "base", make_summary(1, label="1.0")),
        "same": write_run(tmp_path / "runs" / "same", make_summary(2, label="1.1")),
        "slow": write_run(tmp_path / "runs" / "slow", make_summary(3, label="1.2", shift_ms={"authenticate": 50})),
        "other": write_run(tmp_path / "other", make_summary(4, users=7)),
    }


def test_compare_exit_codes_and_outputs(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main_compare([str(runs["base"]), str(runs["same"]), "--fail-on-regression"]) == exitcodes.OK
    assert "0 regressed" in capsys.readouterr().out
    assert main_compare([str(runs["base"]), str(runs["slow"])]) == exitcodes.OK  # not asked to fail
    out = tmp_path / "cmp"
    code = main_compare(
        [
            str(runs["base"]),
            str(runs["slow"] / "summary.json"),
            "--fail-on-regression",
            "--out",
            str(out),
            "--format",
            "markdown",
        ]
    )
    assert code == exitcodes.REGRESSION
    assert "| authenticate |" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"compare.html", "compare.md", "compare.json"}
    data = json.loads((out / "compare.json").read_text())
    assert "authenticate p50" in data["regressions"]


def test_compare_refuses_mismatched_runs_unless_forced(runs: dict[str, Path], capsys) -> None:
    assert main_compare([str(runs["base"]), str(runs["other"])]) == exitcodes.NOT_COMPARABLE
    assert "users" in capsys.readouterr().err
    assert main_compare([str(runs["base"]), str(runs["other"]), "--force", "--format", "none"]) == exitcodes.OK


def test_compare_errors_are_one_line_and_exit_2(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main_compare([str(tmp_path / "nope"), str(runs["base"])]) == exitcodes.ERROR
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "lp-harness/summary", "version": 99, "run": {}, "steps": {}}))
    assert main_compare([str(bad), str(runs["base"])]) == exitcodes.ERROR
    err = capsys.readouterr().err
    assert "no summary.json" in err and "version 99" in err and "Traceback" not in err
    assert main_compare([str(runs["base"])]) == exitcodes.ERROR  # usage error from argparse
    assert main_compare([str(runs["base"]), str(runs["same"]), "--tolerance", "lots"]) == exitcodes.ERROR


def test_trend_writes_one_page(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "trend.html"
    code = main_trend(
        [str(tmp_path / "runs"), "--order", "label", "--metric", "authenticate:p50,p95", "--out", str(out)]
    )
    assert code == exitcodes.OK
    html = out.read_text()
    assert html.count("<svg") == 1 and html.index(">1.0<") < html.index(">1.2<")


def test_baseline_promote_copies_and_replaces(runs: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "baseline"
    assert main_promote([str(runs["base"]), "--to", str(dest)]) == exitcodes.OK
    assert json.loads((dest / "summary.json").read_text())["run"]["label"] == "1.0"
    assert (dest / "locust_report.html").exists() and (dest / "baseline.json").exists()
    assert main_baseline(["promote", str(runs["same"]), "--to", str(dest)]) == exitcodes.OK
    assert json.loads((dest / "summary.json").read_text())["run"]["label"] == "1.1"
    assert not list(tmp_path.glob(".baseline*"))  # no staging or old folder left behind


def test_baseline_refuses_failed_runs_and_foreign_folders(tmp_path: Path) -> None:
    failed = make_summary(5)
    failed["thresholds"] = {"passed": False, "rules": []}
    run = write_run(tmp_path / "failed", failed)
    assert main_promote([str(run), "--to", str(tmp_path / "b")]) == exitcodes.ERROR
    assert main_promote([str(run), "--to", str(tmp_path / "b"), "--force"]) == exitcodes.OK
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep me")
    assert main_promote([str(run), "--to", str(foreign), "--force"]) == exitcodes.ERROR
    assert (foreign / "important.txt").read_text() == "keep me"


def test_thresholds_check_exit_codes_and_junit(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    junit = tmp_path / "junit.xml"
    sample = ROOT / "scenarios" / "thresholds.sample.toml"
    code = main_thresholds(
        ["check", str(runs["base"]), "--threshold", "authenticate:p95<100000", "--junit", str(junit)]
    )
    assert code == exitcodes.OK
    assert len(ET.parse(junit).getroot().findall(".//testcase")) == 1
    code = main_thresholds(
        [
            "check",
            str(runs["slow"]),
            "--thresholds",
            str(sample),
            "--threshold",
            "authenticate:p50<60",
            "--junit",
            str(junit),
        ]
    )
    assert code == exitcodes.THRESHOLDS_FAILED
    assert ET.parse(junit).getroot().find("testsuite").get("failures") != "0"
    assert main_thresholds(["check", str(runs["base"]), "--threshold", "authenticate:p95 <<< 1"]) == exitcodes.ERROR
    assert "FAIL" in capsys.readouterr().out


def test_report_writes_the_run_page(runs: dict[str, Path]) -> None:
    assert main_report([str(runs["base"])]) == exitcodes.OK
    assert "<svg" in (runs["base"] / "report.html").read_text()


def test_python_dash_m_entry_point(runs: dict[str, Path]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.reports",
            "compare",
            str(runs["base"]),
            str(runs["slow"]),
            "--fail-on-regression",
            "--format",
            "none",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == exitcodes.REGRESSION, out.stderr
    assert main(["--help"]) == 0
