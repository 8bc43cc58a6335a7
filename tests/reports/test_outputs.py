"""Outputs: HTML pages are well-formed with an <svg> per chart, Markdown tables, and no heavy imports."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.reports import render, run_page, trend
from harness.reports.compare import compare
from harness.reports.thresholds import evaluate, load_thresholds_file
from tests.reports.synth import make_summary

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}svg"
XHTML_VOID = {"meta", "br", "hr", "img", "input", "link"}


class _Balance(HTMLParser):
    """Checks every non-void element is closed in order (the HTML5 parser's view of well-formedness)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        if tag not in XHTML_VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs) -> None:  # noqa: ANN001
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def well_formed(html: str) -> ET.Element:
    """Parse as XML (our pages are XHTML-clean) and as HTML; return the XML tree."""
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "").replace("http://127.0.0.1", "")
    assert "https://" not in html and "<script src" not in html  # self-contained: no CDN, no network
    root = ET.fromstring(html.split("\n", 1)[1])
    checker = _Balance()
    checker.feed(html)
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    return root


def charts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(SVG))


def test_compare_html_has_every_chart(tmp_path: Path) -> None:
    base, cand = make_summary(1, label="1.4.1"), make_summary(2, label="1.4.2", shift_ms={"authenticate": 50.0})
    result = compare(base, cand)
    html = render.html(result, base, cand)
    root = well_formed(html)
    svgs = charts(root)
    # overview: p50, p95, phase failure, step failure; per step: distribution + percentile bars
    assert len(svgs) == 4 + 2 * len(result["steps"])
    for svg in svgs:
        assert svg.find("{http://www.w3.org/2000/svg}title") is not None
    distributions = [s for s in svgs if "latency distribution" in s.find("{http://www.w3.org/2000/svg}title").text]
    assert len(distributions) == len(result["steps"])
    assert all(len(s.findall("{http://www.w3.org/2000/svg}polygon")) == 2 for s in distributions)  # both runs
    assert "regressed" in html
    (tmp_path / "compare.html").write_text(html)


def test_markdown_is_a_pasteable_table() -> None:
    base, cand = make_summary(3), make_summary(4, shift_ms={"authenticate": 50.0})
    md = render.markdown(compare(base, cand))
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and "→" in line]
    assert len(table_rows) == len(base["steps"]) + len(base["phases"])
    assert "🔴" in next(line for line in table_rows if line.startswith("| authenticate "))
    assert "Why each change counts" in md


def test_terminal_table_lists_every_metric() -> None:
    result = compare(make_summary(5), make_summary(6))
    text = render.terminal(result)
    assert text.count("  p95") == len(result["steps"])
    assert "0 regressed" in text


def test_trend_page_charts_runs_in_release_order() -> None:
    labels = ["release-1.10.0", "release-1.9.0", "release-1.2.0"]
    runs = [make_summary(10 + i, label=lab, shift_ms={"authenticate": 3.0 * i}) for i, lab in enumerate(labels)]
    ordered = trend.order_runs(runs, "label")
    assert [r["run"]["label"] for r in ordered] == ["release-1.2.0", "release-1.9.0", "release-1.10.0"]
    specs = ["authenticate:p50,p95", "phase:token:fail_ratio,phase:socket:fail_ratio", "*:fail_ratio", "run:rps"]
    html = trend.trend_html(runs, specs, order="label")
    svgs = charts(well_formed(html))
    assert len(svgs) == len(specs)
    assert len(svgs[0].findall("{http://www.w3.org/2000/svg}circle")) == 2 * len(runs)  # 2 lines x 3 runs
    assert len(svgs[2].findall("{http://www.w3.org/2000/svg}polyline")) == len(runs[0]["steps"])
    default = charts(well_formed(trend.trend_html(runs)))
    assert len(default) == len(trend.default_specs(list(runs[0]["steps"]), runs))


def _timeline(p95_ms: float, rows: int) -> dict:
    return {
        "interval_s": 10.0,
        "rows": [
            {"t_s": 10.0 * (i + 1), "interval_s": 10.0, "users": 5, "phases": {},
             "steps": {"authenticate": {"count": 9, "failures": 0, "p50_ms": p95_ms / 2, "p95_ms": p95_ms + i}},
             "sockets": {"open": 5 + i, "opened": 1, "server_closes": {}}}
            for i in range(rows)
        ],
    }  # fmt: skip


def test_compare_html_overlays_the_two_runs_timelines() -> None:
    base, cand = make_summary(3, label="1.4.1"), make_summary(4, label="1.4.2")
    base["timeline"], cand["timeline"] = _timeline(40.0, 6), _timeline(90.0, 8)  # the candidate ran longer
    root = well_formed(render.html(compare(base, cand), base, cand))
    titled = {s.find("{http://www.w3.org/2000/svg}title").text: s for s in charts(root)}
    over_time = titled["authenticate: p95 over time"]
    lines = over_time.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2  # base and candidate, on the same seconds
    assert "open sockets over time" in titled
    assert "p95 over time" not in " ".join(titled.keys() - {"authenticate: p95 over time"})  # only where both have it


def test_run_page_says_how_the_run_ended() -> None:
    summary = make_summary(20)
    summary["run"]["end_reason"] = "sigterm"
    summary["thresholds"] = evaluate(
        load_thresholds_file(ROOT / "scenarios" / "thresholds.sample.toml"), summary
    ).to_section()
    html = run_page.run_html(summary)
    root = well_formed(html)
    assert len(charts(root)) == 2 + len(summary["steps"])
    assert "sigterm" in html and "Thresholds" in html


def test_run_page_shows_the_generator_verdict_the_hold_apart_and_the_server_closes() -> None:
    summary = make_summary(21, steps={"connect": ("socket", 60.0, 0.4), "hold": ("socket", 30000.0, 0.01)})
    summary["sockets"]["server_closes"] = {"4401": 7, "1011": 2}
    summary["load_generator"] = {
        "verdict": "saturated",
        "reasons": ["local: CPU 97% >= 90%"],
        "saturated_s": 12.0,
        "saturated_share": 0.1,
        "saturated_periods": [{"from_s": 30.0, "to_s": 42.0, "processes": ["local"], "reasons": ["CPU 97% >= 90%"]}],
        "processes": [{"id": "local", "cpu_percent_mean": 60.0, "cpu_percent_max": 97.0, "loop_lag_mean_ms": 9.0,
                       "loop_lag_p99_ms": 120.0, "loop_lag_max_ms": 400.0, "rss_max_bytes": 9e7, "fds_max": 510,
                       "fd_limit": 20000, "saturated_s": 12.0}],
        "total": {"cpu_percent_max": 97.0, "loop_lag_p99_ms": 120.0},
    }
    html = run_page.run_html(summary)
    root = well_formed(html)
    titles = [chart.find("{http://www.w3.org/2000/svg}title").text for chart in charts(root)]
    assert titles[:2] == ["latency per step", "hold"], titles  # seconds apart from milliseconds
    assert len(charts(root)) == 3 + len(summary["steps"])  # requests, hold, phases, one distribution per step
    cells = [td.text for td in root.iter("td")]
    assert cells[cells.index("4401") : cells.index("4401") + 2] == ["4401", "7"] and "1011" in cells
    assert "{" not in " ".join(c or "" for c in cells)  # no raw mapping printed
    assert "Load generator: saturated" in html and "SATURATED 10.0% of the run (30-42 s" in html
    assert "CPU 97% &gt;= 90%" in html and "400 ms" in cells


def test_reports_wing_imports_neither_locust_nor_gevent() -> None:
    code = (
        "import sys\n"
        "import harness.reports.cli, harness.reports.compare, harness.reports.trend, harness.reports.thresholds\n"
        "import harness.reports.render, harness.reports.run_page, harness.reports.baseline\n"
        "bad = [m for m in ('locust', 'gevent', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
