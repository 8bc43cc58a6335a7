"""compare(): noise-aware verdicts on synthetic runs drawn from seeded distributions, and comparability."""

from __future__ import annotations

import copy

import pytest

from harness.reports.compare import (
    IMPROVED,
    NA,
    REGRESSED,
    UNCHANGED,
    NotComparable,
    Tolerance,
    check_comparable,
    compare,
)
from tests.reports.synth import DEFAULT_STEPS, make_summary


def verdicts(result: dict, step: str) -> dict[str, str]:
    return {r["metric"]: r["verdict"] for r in result["steps"][step]["metrics"]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plus_50ms_on_authenticate_regresses_it_and_nothing_else(seed: int, validate) -> None:
    base = validate(make_summary(seed))
    cand = validate(make_summary(seed + 1000, shift_ms={"authenticate": 50.0}))
    result = compare(base, cand)
    auth = verdicts(result, "authenticate")
    assert auth["p50"] == auth["p95"] == auth["mean"] == REGRESSED
    flagged = {name.split(" ")[0] for name in result["regressions"] + result["improvements"]}
    assert flagged == {"authenticate"}, result["regressions"] + result["improvements"]
    assert result["regressed"]


@pytest.mark.parametrize("seed", range(8))
def test_two_draws_from_one_distribution_flag_nothing(seed: int) -> None:
    result = compare(make_summary(100 + seed), make_summary(200 + seed))
    assert result["counts"][REGRESSED] == result["counts"][IMPROVED] == 0, (
        result["regressions"] + result["improvements"]
    )


def test_a_faster_candidate_is_improved() -> None:
    base = make_summary(11, shift_ms={"connect": 40.0})
    result = compare(base, make_summary(12))
    assert verdicts(result, "connect")["p50"] == IMPROVED
    assert result["improvements"] and not result["regressed"]


def test_small_runs_are_not_flagged_for_small_shifts_but_are_for_big_ones() -> None:
    """Noise-awareness: 60 samples cannot show a 6 ms shift on a 45 ms step, and can show +50 ms."""
    small = dict(n=60)
    r = compare(make_summary(21, **small), make_summary(22, shift_ms={"authenticate": 6.0}, **small))
    assert verdicts(r, "authenticate")["p50"] == UNCHANGED
    r = compare(make_summary(21, **small), make_summary(22, shift_ms={"authenticate": 50.0}, **small))
    assert verdicts(r, "authenticate")["p50"] == REGRESSED


def test_tolerance_hides_real_but_small_changes() -> None:
    base, cand = make_summary(31, n=20000), make_summary(32, n=20000, shift_ms={"authenticate": 4.0})
    assert verdicts(compare(base, cand, Tolerance(absolute_ms=1.0, relative=0.0)), "authenticate")["p50"] == REGRESSED
    assert verdicts(compare(base, cand), "authenticate")["p50"] == UNCHANGED  # 4 ms < the default 5 ms


def test_failure_ratio_regression_uses_the_proportion_test() -> None:
    base = make_summary(41, fail_prob={"connect": 0.001})
    cand = make_summary(42, fail_prob={"connect": 0.05})
    result = compare(base, cand)
    assert verdicts(result, "connect")["fail_ratio"] == REGRESSED
    row = next(r for r in result["steps"]["connect"]["metrics"] if r["metric"] == "fail_ratio")
    assert row["p_value"] < result["alpha_per_metric"]
    phase_base = make_summary(43, socket_fail_prob=0.001)
    phase_cand = make_summary(44, socket_fail_prob=0.05)
    result = compare(phase_base, phase_cand)
    socket = result["phases"]["socket"]
    assert socket["metrics"][0]["verdict"] == REGRESSED
    assert any(c["category"] == "close 4401" and c["verdict"] == REGRESSED for c in socket["categories"])


def test_verdicts_are_deterministic() -> None:
    base, cand = make_summary(51), make_summary(52, shift_ms={"ping": 3.0})
    assert compare(base, cand) == compare(base, cand)


def test_mismatched_runs_are_refused_unless_forced() -> None:
    base = make_summary(61)
    for change in ({"users": 10}, {"scenario": "soak"}, {"target": "real"}):
        cand = make_summary(62, **change)
        with pytest.raises(NotComparable) as info:
            compare(base, cand)
        assert next(iter(change)) in str(info.value)
        forced = compare(base, cand, force=True)
        assert forced["comparability"]["forced"] and not forced["comparability"]["comparable"]


def test_harmless_differences_are_listed_not_refused() -> None:
    base = make_summary(71)
    cand = make_summary(72, duration_s=120.0)
    cand["run"]["settings"]["hold_s"] = 30.0
    cand["run"]["account"] = "other"
    comp = check_comparable(base, cand)
    fields = {m.field for m in comp.warnings}
    assert comp.comparable
    assert {"duration_s", "settings.hold_s", "account"} <= fields
    assert "idp" not in fields  # the embedded emulator's random port is not a difference
    real_b, real_c = make_summary(73, target="real"), make_summary(74, target="real")
    assert "idp" in {m.field for m in check_comparable(real_b, real_c).warnings}


def test_a_step_missing_on_one_side_is_not_applicable() -> None:
    base = make_summary(81)
    cand = copy.deepcopy(make_summary(82))
    del cand["steps"]["ping"]
    result = compare(base, cand)
    assert set(verdicts(result, "ping").values()) == {NA}
    assert any(m["field"] == "steps" for m in result["comparability"]["warnings"])


def test_per_metric_confidence_is_less_strict_than_family_wise() -> None:
    base, cand = make_summary(91), make_summary(92)
    fam = compare(base, cand)
    per = compare(base, cand, Tolerance(family_wise=False))
    assert per["alpha_per_metric"] == pytest.approx(0.05)
    assert fam["alpha_per_metric"] == pytest.approx(0.05 / fam["judged_metrics"])
    assert fam["judged_metrics"] >= 8 * len(DEFAULT_STEPS)


def test_a_rise_in_lost_messages_is_a_regression_of_the_run() -> None:
    base, cand = make_summary(71), make_summary(72)
    base["messages"] = {"sent": 20000, "received": 19990, "replied": 19990, "lost": 10}
    cand["messages"] = {"sent": 20000, "received": 19400, "replied": 19400, "lost": 600}
    result = compare(base, cand)
    row = next(r for r in result["other"] if r["metric"] == "messages lost_ratio")
    assert row["verdict"] == REGRESSED and "run messages lost_ratio" in result["regressions"], row
    assert not any(r["metric"] == "messages lost_ratio" for r in compare(make_summary(71), make_summary(72))["other"])


def test_a_saturated_run_is_marked_and_its_slower_steps_are_not_called_regressed() -> None:
    base = make_summary(81)
    cand = make_summary(82, shift_ms={"authenticate": 50.0})
    cand["load_generator"] = {"verdict": "saturated", "saturated_share": 0.25, "reasons": ["local: CPU 99% >= 90%"]}
    result = compare(base, cand)
    auth = next(r for r in result["steps"]["authenticate"]["metrics"] if r["metric"] == "p50")
    assert auth["verdict"] == NA and "saturated" in auth["why"], auth
    assert not any(name.startswith("authenticate") for name in result["regressions"]), result["regressions"]
    assert result["saturated_runs"] == ["candidate"]
    assert any("candidate run's generator was saturated 25.0%" in w["text"] for w in result["comparability"]["warnings"])
    trusted = compare(base, cand, trust_saturated=True)  # asked to: judged as any run
    assert verdicts(trusted, "authenticate")["p50"] == REGRESSED and trusted["trust_saturated"]
