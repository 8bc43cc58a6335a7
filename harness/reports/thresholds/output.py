"""A threshold report for people and for CI: the end-of-run terminal table and JUnit XML."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from harness.reports.thresholds.model import ThresholdReport, format_value


def terminal_table(report: ThresholdReport) -> str:
    """A table for the end of a run: one line per rule, failures first marked."""
    if not report.results:
        return "thresholds: none set"
    rows = [("", "rule", "value", "limit", "")]
    for r in report.results:
        mark = {"pass": "ok", "fail": "FAIL", "no data": "NO DATA"}[r.status]
        flags = "abortOnFail" + (f" after {r.rule.delay_abort_eval_s:g}s" if r.rule.delay_abort_eval_s else "")
        rows.append(
            (
                mark,
                r.rule.name,
                format_value(r.value, r.rule.kind),
                f"{r.rule.op} {format_value(r.limit, r.rule.kind)}",
                flags if r.rule.abort_on_fail else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    failed = len(report.failed)
    lines.append(
        f"thresholds: {len(report.results) - failed}/{len(report.results)} passed"
        + ("" if report.passed else f", {failed} FAILED")
    )
    return "\n".join(lines)


def junit_xml(
    report: ThresholdReport,
    *,
    run_id: str | None = None,
    suite: str = "lp-harness thresholds",
    generator: tuple[str, str] | None = None,
) -> str:
    """JUnit XML: one <testcase> per rule, a <failure> with value vs limit for each broken rule.

    ``generator``: the load generator's (verdict, line), a suite property and its output; gating on
    it is a rule's job (``load_generator: saturated_share < 1%``).
    """
    failures = len(report.failed)
    suites = ET.Element("testsuites", name=suite, tests=str(len(report.results)), failures=str(failures), errors="0")
    ts = ET.SubElement(
        suites,
        "testsuite",
        name=suite,
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
    )
    if run_id or generator:
        props = ET.SubElement(ts, "properties")
        if run_id:
            ET.SubElement(props, "property", name="run_id", value=run_id)
        if generator:
            ET.SubElement(props, "property", name="load_generator", value=generator[0])
    for r in report.results:
        case = ET.SubElement(
            ts, "testcase", classname=f"lp-harness.thresholds.{r.rule.scope_key}", name=r.rule.name, time="0"
        )
        if not r.ok:
            fail = ET.SubElement(
                case, "failure", message=r.message, type="no data" if r.status == "no data" else "threshold"
            )
            fail.text = (
                f"rule: {r.rule.name}\nmetric: {r.metric}\nvalue: {format_value(r.value, r.rule.kind)}\n"
                f"limit: {r.rule.op} {format_value(r.limit, r.rule.kind)}\n"
            )
        else:
            out = ET.SubElement(case, "system-out")
            out.text = r.message
    if generator:
        ET.SubElement(ts, "system-out").text = generator[1]
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
