"""Every reader refuses a corrupt summary: one line naming the file and the field, exit 2, nothing written.

The readers -- compare, trend, report, baseline promote, thresholds check -- all load through
``loading.load_summary``, which checks the packaged schema with ``schemacheck`` (no jsonschema at
run time). Here each reader meets the same corrupt summaries; ``jsonschema`` (a test dependency)
is the referee that the walker judges the schema as a JSON Schema validator does.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.reports import exitcodes
from harness.reports.cli import main_compare, main_promote, main_report, main_thresholds, main_trend
from harness.reports.loading import ReportError, load_schema, load_summary
from harness.reports.schemacheck import first_problem, unknown_keywords
from tests.reports.synth import make_summary

ROOT = Path(__file__).resolve().parents[2]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(summary: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = summary
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda summary: summary.pop(key)


# name -> (how to corrupt a valid summary, what the message must name)
CORRUPT: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a null count": (_set("steps/connect/count", None), "steps.connect.count must be an integer, not null"),
    "a count as text": (_set("phases/socket/failures", "3"), 'phases.socket.failures must be an integer, not "3"'),
    "a NaN latency": (_set("steps/authenticate/p95_ms", math.nan), "steps.authenticate.p95_ms must be a finite number, not NaN"),
    "an infinite count": (_set("pings/sent", math.inf), "pings.sent must be a finite number, not Infinity"),
    "a missing section": (_drop("sockets"), "field sockets is missing"),
    "negative users": (_set("run/users", -5), "run.users must be >= 0"),
    "a verdict that is not a boolean": (
        _set("thresholds", {"passed": "yes", "rules": []}),
        'thresholds.passed must be true or false, not "yes"',
    ),
}  # fmt: skip


def _write_run(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))  # json writes NaN/Infinity as bare words
    (folder / "locust_report.html").write_text("<html></html>\n")
    return folder


def _corrupt(case: str) -> dict[str, Any]:
    summary = copy.deepcopy(make_summary(11, label="bad"))
    CORRUPT[case][0](summary)
    return summary


def _compare(bad: Path, good: Path, tmp: Path) -> tuple[int, list[Path]]:
    out = tmp / "cmp"
    return main_compare([str(good), str(bad), "--out", str(out), "--format", "none"]), [out]


def _trend(bad: Path, good: Path, tmp: Path) -> tuple[int, list[Path]]:
    out = tmp / "trend.html"
    return main_trend([str(bad.parent), "--out", str(out)]), [out]  # a folder holding both runs


def _report(bad: Path, good: Path, tmp: Path) -> tuple[int, list[Path]]:
    return main_report([str(bad)]), [bad / "report.html"]


def _promote(bad: Path, good: Path, tmp: Path) -> tuple[int, list[Path]]:
    fresh = tmp / "fresh-baseline"
    kept = tmp / "baseline"
    assert main_promote([str(good), "--to", str(kept)]) == exitcodes.OK
    codes = {main_promote([str(bad), "--to", str(fresh)]), main_promote([str(bad), "--to", str(kept), "--force"])}
    assert json.loads((kept / "summary.json").read_text())["run"]["label"] != "bad"  # the old baseline stays
    return codes.pop() if len(codes) == 1 else -1, [fresh]


def _check(bad: Path, good: Path, tmp: Path) -> tuple[int, list[Path]]:
    junit = tmp / "junit.xml"
    return main_thresholds(["check", str(bad), "--threshold", "authenticate:p95<1s", "--junit", str(junit)]), [junit]


READERS = {"compare": _compare, "trend": _trend, "report": _report, "baseline promote": _promote, "thresholds check": _check}


@pytest.mark.parametrize("case", list(CORRUPT))
@pytest.mark.parametrize("reader", list(READERS))
def test_each_reader_refuses_a_corrupt_summary(tmp_path: Path, capsys, reader: str, case: str) -> None:
    good = _write_run(tmp_path / "runs" / "good", make_summary(10, label="good"))
    bad = _write_run(tmp_path / "runs" / "bad", _corrupt(case))
    capsys.readouterr()
    code, not_written = READERS[reader](bad, good, tmp_path)
    err = capsys.readouterr().err
    assert code == exitcodes.ERROR, err
    lines = [line for line in err.splitlines() if "summary" in line]
    assert len(lines) >= 1 and all(line == lines[0] for line in lines), err  # the same one line per refusal
    assert str(bad / "summary.json") in lines[0] and CORRUPT[case][1] in lines[0], lines[0]
    assert "Traceback" not in err
    for path in not_written:
        assert not path.exists(), path


def test_the_command_line_says_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = _write_run(tmp_path / "bad", _corrupt("a NaN latency"))
    out = subprocess.run(
        [sys.executable, "-m", "harness.reports", "report", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == exitcodes.ERROR
    assert out.stderr.count("\n") == 1 and "p95_ms" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_the_walker_implements_every_keyword_the_schema_uses() -> None:
    assert unknown_keywords(load_schema()) == set()


def test_the_walker_agrees_with_jsonschema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    valid = [make_summary(seed) for seed in range(3)]
    with_rules = make_summary(4)
    with_rules["thresholds"] = {
        "passed": False,
        "rules": [{"rule": "a: p95 < 1", "metric": "steps.a.p95_ms", "value": None, "limit": 1.0, "ok": False,
                   "abort_on_fail": False, "status": "no data", "op": "<", "source": None}],
    }  # fmt: skip
    valid.append(with_rules)
    for summary in valid:
        assert validator.is_valid(summary) and first_problem(summary, schema) is None
    for case in CORRUPT:
        summary = _corrupt(case)
        assert first_problem(summary, schema) is not None, case
        if case != "a NaN latency":  # the one rule stricter than JSON Schema: numbers are finite
            assert not validator.is_valid(summary), case
    path = _write_run(tmp_path / "ok", valid[0])
    assert load_summary(path)["run"]["id"] == valid[0]["run"]["id"]
    with pytest.raises(ReportError, match="not a valid summary"):
        load_summary(_write_run(tmp_path / "no", _corrupt("a missing section")))
