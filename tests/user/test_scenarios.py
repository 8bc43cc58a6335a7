"""Scenario profiles and shapes: each is selectable and each run stops by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.shapes import LoadShape, SmokeShape
from tests.user.runs import ROOT, run_locust


@pytest.mark.parametrize("name", ["smoke", "load", "soak"])
def test_profiles_are_locust_config_files(name: str) -> None:
    text = (ROOT / "scenarios" / f"{name}.conf").read_text()
    assert f"lp-scenario = {name}" in text and "run-time" in text


def test_load_shape_is_a_staircase_to_a_plateau() -> None:
    shape = LoadShape()
    counts = [shape.users_at(t, 100, 10, 80) for t in range(0, 80, 5)]
    assert counts[0] == 25 and counts[-1] == 100
    assert counts == sorted(counts) and counts[len(counts) // 2 :] == [100] * (len(counts) - len(counts) // 2)
    assert SmokeShape().users_at(0, 100, 10, 10) == 5


def test_shape_from_the_command_line_runs_and_stops(tmp_path: Path) -> None:
    run = run_locust(
        ["-f", f"{ROOT / 'locustfile.py'},{ROOT / 'scenarios' / 'shapes.py'}", "-u", "3", "-r", "3", "-t", "4s",
         "--stop-timeout", "3", "--lp-hold", "0.3"],
        tmp_path,
    )
    assert run.returncode == 0, run.output[-2000:]
    assert run.summary["run"]["scenario"] == "smoke"  # the first shape in the file
    assert run.summary["steps"]["connect"]["count"] > 0
