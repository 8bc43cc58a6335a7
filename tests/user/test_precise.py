"""Each step's percentiles within 1 %, from a histogram recorded beside Locust's and merged from workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.reports import histogram as H
from harness.reports import loghist
from tests.user.runs import QUICK, run_locust


@pytest.mark.parametrize("processes", [1, 2])
def test_a_1_23_s_hold_reads_1_23_s_in_the_summary_and_the_gate(tmp_path: Path, processes: int) -> None:
    extra = ["--processes", "2"] if processes == 2 else []
    gate = ["--lp-threshold", "hold:p50>1220", "--lp-threshold", "hold:p(97)<1250"]  # Locust's buckets: 1200
    run = run_locust([*QUICK, "-t", "4s", "--lp-hold", "1.23", *gate, *extra], tmp_path)
    summary = run.summary
    hold = summary["steps"]["hold"]
    assert hold["count"] > 0 and abs(hold["p50_ms"] - 1230.0) / 1230.0 <= 0.01, hold
    assert hold["min_ms"] <= hold["p50_ms"] <= hold["max_ms"]
    locust_p50 = H.percentile(H.normalize(hold["histogram_ms"]), hold["count"], 0.5)
    assert locust_p50 == 1200  # what Locust's own histogram can say
    for name, step in summary["steps"].items():  # every request counted once, whichever process made it
        assert sum(loghist.normalize(step["histogram_log"]).values()) == step["count"], name
    assert summary["thresholds"]["passed"], summary["thresholds"]
    if processes == 2:
        assert summary["run"]["processes"] == 2
