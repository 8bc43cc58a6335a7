"""Thresholds: parsing (file, command line), evaluation, JUnit, the summary section, abort-on-fail."""

from __future__ import annotations

import copy
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.reports import exitcodes, tomlfile
from harness.reports import thresholds as T
from harness.reports.summary import build_summary
from tests.reports.synth import make_summary

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "scenarios" / "thresholds.sample.toml"


def with_section(summary: dict, report: T.ThresholdReport) -> dict:
    """The summary as the run's summary builder would write it with this thresholds section."""
    metrics = {k: summary[k] for k in ("phases", "sockets", "pings")}
    return build_summary(summary["run"], summary["steps"], metrics, report.to_section())


def test_sample_file_parses_with_the_one_toml_loader() -> None:
    text = SAMPLE.read_text()
    data = tomlfile.loads(text)
    assert tomlfile.loads(text.encode("utf-8")) == data  # bytes (as config files are read) alike
    assert isinstance(data["thresholds"]["authenticate"][2], dict)  # k6's object form survives
    rules = T.load_thresholds_file(SAMPLE)
    assert len(rules) >= 10
    assert any(r.abort_on_fail and r.delay_abort_eval_s == 30.0 for r in rules)


def test_the_toml_loader_rejects_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="line 2"):
        tomlfile.loads('[thresholds]\n"a" = ["p95 < 1" "x"]\n')
    with pytest.raises(tomlfile.TomlError, match="UTF-8"):
        tomlfile.loads(b'"a" = "\xff"\n')


def test_a_bad_thresholds_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "slo.toml"
    bad.write_text('[thresholds]\n"a" = ["p95 < 1" "x"]\n')
    with pytest.raises(T.ThresholdError, match=r"slo\.toml.*line 2"):
        T.load_thresholds_file(bad)


def test_a_rule_that_holds_and_one_that_breaks(validate) -> None:
    summary = make_summary(1, shift_ms={"authenticate": 50})
    p95 = summary["steps"]["authenticate"]["p95_ms"]
    rules = T.load_rules(cli=[f"authenticate:p95<{p95 + 1}", f"authenticate:p95<{p95}"])
    report = T.evaluate(rules, summary)
    assert [r.status for r in report.results] == ["pass", "fail"]
    assert not report.passed
    section = report.to_section()
    assert section["passed"] is False and section["rules"][1]["value"] == p95 and section["rules"][1]["limit"] == p95
    validate(with_section(summary, report))
    assert exitcodes.run_exit_code(with_section(summary, report)) == exitcodes.THRESHOLDS_FAILED
    passing = T.evaluate(rules[:1], summary)
    assert exitcodes.run_exit_code(with_section(summary, passing)) == exitcodes.OK


def test_every_scope_and_metric_of_the_sample_evaluates(validate) -> None:
    summary = make_summary(2, users=10)
    report = T.evaluate(T.load_thresholds_file(SAMPLE), summary)
    assert all(r.status in ("pass", "fail") for r in report.results), [r.message for r in report.results]
    star = [r for r in report.results if r.source and r.source.startswith("*:")]
    assert len(star) == len(summary["steps"])  # the wildcard expands per step
    validate(with_section(summary, report))


def test_values_come_from_the_summary_and_the_histogram() -> None:
    summary = make_summary(3)
    step = summary["steps"]["connect"]
    from harness.reports import histogram as H

    hist = H.normalize(step["histogram_ms"])
    cases = {
        "connect:p95 < 1": step["p95_ms"],
        "connect:p(99.9) < 1": step["p99_9_ms"],
        "connect:p97 < 1": H.percentile(hist, H.total(hist), 0.97),
        "connect:med < 1": step["p50_ms"],
        "connect:avg < 1": step["mean_ms"],
        "connect:rate < 1": step["fail_ratio"],
        "phase:socket:category['close 4401'] < 1": summary["phases"]["socket"]["categories"].get("close 4401", 0),
        "phase:token:category['never'] < 1": 0,
        "sockets:server_closes['4401'] < 1": summary["sockets"]["server_closes"].get("4401", 0),
        "pings:p95 < 1": summary["steps"]["ping"]["p95_ms"],
        "pings:timeout_ratio < 1": summary["pings"]["timeouts"] / summary["pings"]["sent"],
        "run:sessions_per_s < 1": summary["phases"]["token"]["sessions"] / summary["run"]["duration_s"],
    }
    for text, expected in cases.items():
        (result,) = T.evaluate([T.parse_cli_rule(text)], summary).results
        assert result.value == pytest.approx(expected), text


def test_units_percent_and_run_fields_on_the_right() -> None:
    assert T.parse_cli_rule("authenticate:p95 < 1.5s").limit == 1500.0
    assert T.parse_cli_rule("authenticate:fail_ratio < 1%").limit == pytest.approx(0.01)
    rule = T.parse_cli_rule("sockets:peak_open >= 0.9 * users")
    summary = make_summary(4, users=40)
    (result,) = T.evaluate([rule], summary).results
    assert result.limit == pytest.approx(36.0) and result.ok


@pytest.mark.parametrize(
    "text",
    [
        "authenticate p95<200",  # no scope
        "authenticate:p95 ~ 200",  # bad operator
        "authenticate:latency < 200",  # unknown metric
        "authenticate:p95 < 2%",  # % on a latency
        "sockets:drops_per_hour < 10ms",  # unit on a count
        "phase:socket:category < 1",  # category needs a key
        "authenticate:p95 < hostname",  # not a run field
        "authenticate:p95<200;abortOnFail;delayAbortEval=soon",
        "authenticate:p95<200;explode",
    ],
)
def test_bad_rules_say_what_is_wrong(text: str) -> None:
    with pytest.raises(T.ThresholdError) as info:
        T.parse_cli_rule(text)
    assert "threshold" in str(info.value)


def test_missing_data_fails_at_the_end_but_never_aborts() -> None:
    summary = make_summary(5)
    del summary["steps"]["ping"]
    rule = T.parse_cli_rule("ping:p95<100;abortOnFail")
    (final,) = T.evaluate([rule], summary).results
    assert final.status == "no data" and not final.ok
    assert not T.ThresholdMonitor([rule]).check(summary, elapsed_s=999).abort


def test_abort_on_fail_waits_for_its_grace_period() -> None:
    summary = make_summary(6, fail_prob={"authenticate": 0.2})
    rules = T.load_rules(cli=["authenticate:fail_ratio<0.05;abortOnFail;delayAbortEval=30s", "connect:p95<1"])
    monitor = T.ThresholdMonitor(rules)
    assert monitor.active and len(monitor.rules) == 1  # only abort-on-fail rules are watched
    assert not monitor.check(summary, elapsed_s=10).abort
    decision = monitor.check(summary, elapsed_s=31)
    assert decision.abort and "authenticate" in decision.reason
    healthy = make_summary(6)
    assert not monitor.check(healthy, elapsed_s=31).abort
    partial = copy.deepcopy(summary)
    partial["run"]["duration_s"] = 40  # elapsed defaults to the summary's duration
    assert monitor.check(partial).abort


def test_junit_has_one_testcase_per_rule_with_value_and_limit() -> None:
    summary = make_summary(7)
    report = T.evaluate(T.load_thresholds_file(SAMPLE) + [T.parse_cli_rule("authenticate:p95<1")], summary)
    root = ET.fromstring(T.junit_xml(report, run_id=summary["run"]["id"]))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(report.results)
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == len(report.failed) == int(root.find("testsuite").get("failures"))
    broken = next(c for c in cases if c.get("name") == "authenticate: p95 < 1")
    message = broken.find("failure").get("message")
    assert str(summary["steps"]["authenticate"]["p95_ms"]) in message and "< 1 ms" in message


def test_terminal_table_marks_failures() -> None:
    report = T.evaluate(T.load_rules(cli=["authenticate:p95<1", "authenticate:p95<100000"]), make_summary(8))
    text = T.terminal_table(report)
    assert "FAIL" in text and "1/2 passed" in text


def test_exit_codes_without_thresholds_follow_locust() -> None:
    clean = make_summary(
        9,
        fail_prob={
            name: 0.0
            for name in (
                "anonymous-authorize",
                "authenticate",
                "connect",
                "request-conversation",
                "ping",
                "close-conversation",
                "time-to-conversation",
            )
        },
        socket_fail_prob=0.0,
    )
    assert exitcodes.run_exit_code(clean) == exitcodes.OK
    assert exitcodes.run_exit_code(make_summary(9, fail_prob={"connect": 0.1})) == exitcodes.FAILURES
    errored = copy.deepcopy(clean)
    errored["run"]["end_reason"] = "error"
    assert exitcodes.run_exit_code(errored) == exitcodes.ERROR
    assert len(set(exitcodes.DESCRIPTIONS)) == 8


def _talking(seed: int, *, sent: int, lost: int) -> dict:
    """A synthetic run whose sessions talked: a messages section and a message-round-trip step."""
    summary = make_summary(seed)
    summary["steps"]["message-round-trip"] = copy.deepcopy(summary["steps"]["connect"])
    summary["messages"] = {"sent": sent, "received": sent - lost, "replied": sent - lost, "lost": lost}
    return summary


def test_the_messages_scope_reads_the_conversation_traffic() -> None:
    summary = _talking(6, sent=400, lost=10)
    trip = summary["steps"]["message-round-trip"]
    cases = {
        "messages:lost_ratio < 1%": 10 / 400,
        "messages:reply_ratio > 0.99": 390 / 400,
        "messages:lost < 1": 10,
        "messages:sent_per_s > 1": 400 / summary["run"]["duration_s"],
        "messages:p95 < 1": trip["p95_ms"],  # the round trip, publish to the agent's reply
        "messages:max < 1": trip["max_ms"],
    }
    for text, expected in cases.items():
        (result,) = T.evaluate([T.parse_cli_rule(text)], summary).results
        assert result.value == pytest.approx(expected), text
        assert result.metric.startswith(("messages.", "steps.message-round-trip")), result.metric
    # a run whose sessions did not talk has no data for it: the rule fails at the end, saying so
    (silent,) = T.evaluate([T.parse_cli_rule("messages:lost_ratio < 1%")], make_summary(6)).results
    assert silent.status == "no data" and "messages.lost_ratio" in silent.message
    with pytest.raises(T.ThresholdError, match="messages"):
        T.parse_cli_rule("messages:drops < 1")  # not a metric of the scope: the error lists the scope's


def _open_model(seed: int, *, due: int, dropped: int, late: int, late_max_ms: float) -> dict:
    """A synthetic run in the open model: the arrival section as harness/user/arrival.py writes it."""
    summary = make_summary(seed)
    started, duration = due - dropped, 10.0
    summary["arrival"] = {
        "rate_from": 10.0, "rate_to": 10.0, "ramp_s": None, "processes": 1, "users": 20, "duration_s": duration,
        "due": due, "started": started, "dropped": dropped, "late": late, "late_max_ms": late_max_ms,
        "target_rate": due / duration, "achieved_rate": started / duration, "max_concurrent": 6,
        "kept": dropped == 0 and late <= 0.01 * started, "warning": None if dropped == 0 else "not kept",
    }  # fmt: skip
    return summary


def test_the_arrival_scope_reads_the_rate_kept_or_missed(validate) -> None:
    missed = _open_model(11, due=100, dropped=5, late=3, late_max_ms=180.0)
    cases = {
        "arrival:dropped_ratio < 1%": 5 / 100,
        "arrival:late_ratio < 1%": 3 / 95,
        "arrival:achieved_ratio > 95%": 9.5 / 10.0,
        "arrival:achieved_rate >= 9.5": 9.5,
        "arrival:target_rate > 1": 10.0,
        "arrival:late_max < 100ms": 180.0,
        "arrival:dropped == 0": 5,
        "arrival:max_concurrent < 20": 6,
        "arrival:due > 0": 100,
        "arrival:started > 0": 95,
        "arrival:late < 1": 3,
    }
    rules = [T.parse_cli_rule(text) for text in cases]
    report = T.evaluate(rules, missed)
    for (text, expected), result in zip(cases.items(), report.results, strict=True):
        assert result.value == pytest.approx(expected), text
        assert result.metric.startswith("arrival."), result.metric
    by_rule = {r.rule.name: r for r in report.results}
    assert by_rule["arrival: dropped_ratio < 1%"].status == "fail" and by_rule["arrival: late_max < 100ms"].status == "fail"
    assert by_rule["arrival: late_max < 100ms"].limit == 100.0 and "180 ms" in by_rule["arrival: late_max < 100ms"].message
    assert by_rule["arrival: achieved_ratio > 95%"].status == "fail"  # 95 % is not above 95 %
    assert by_rule["arrival: max_concurrent < 20"].status == "pass"
    missed["thresholds"] = report.to_section()
    validate(missed)
    junit = ET.fromstring(T.junit_xml(report, run_id=missed["run"]["id"]))
    assert {c.get("classname") for c in junit.iter("testcase")} == {"lp-harness.thresholds.arrival"}

    gate = [T.parse_cli_rule("arrival:dropped_ratio<1%"), T.parse_cli_rule("arrival:late_max<250ms")]
    assert T.evaluate(gate, _open_model(12, due=100, dropped=0, late=0, late_max_ms=12.0)).passed
    nothing_due = T.evaluate(gate[:1], _open_model(13, due=0, dropped=0, late=0, late_max_ms=0.0))
    assert nothing_due.results[0].value == 0.0 and nothing_due.passed
    # a closed-model run cannot show its rate was kept: no data fails at the end, never while it runs
    closed = make_summary(12)
    (final,) = T.evaluate(gate[:1], closed).results
    assert final.status == "no data" and "arrival.dropped_ratio" in final.message
    assert T.evaluate(gate[:1], closed, final=False).passed


@pytest.mark.parametrize("text", ["arrival:drops < 1", "arrival:p95 < 100", "arrival:late_max < 1%", "arrival:kept == 1"])
def test_the_arrival_scope_refuses_what_it_does_not_have(text: str) -> None:
    with pytest.raises(T.ThresholdError, match="arrival|%"):
        T.parse_cli_rule(text)
