"""Trend: chosen metrics across many runs, in label (release) or date order, as one HTML page.

A chart spec is a comma-separated list of metrics, ``SCOPE:METRIC`` as in thresholds; an item
without a scope takes the previous item's (``authenticate:p50,p95,p99`` is three lines on one
chart); ``*:METRIC`` draws one line per step. The page's layout is ``templates/trend.html.j2``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.reports import svg
from harness.reports.loading import ReportError, expand_runs, load_summary
from harness.reports.pages import render
from harness.reports.thresholds import MS, RATIO, SECONDS, Rule, metric_value, parse_metric_ref

ORDERS: Final = ("date", "label", "given")


@dataclass
class Chart:
    title: str
    unit: str
    series: list[tuple[str, Rule]]


def natural_key(text: str) -> list[Any]:
    """'release-1.10.0' after 'release-1.9.2': numbers compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text) if part]


def order_runs(runs: Sequence[Mapping[str, Any]], order: str = "date") -> list[Mapping[str, Any]]:
    """``date``: by started_at; ``label``: natural order of labels (runs without one by date, after);
    ``given``: as passed."""
    if order not in ORDERS:
        raise ReportError(f"order must be one of {', '.join(ORDERS)}")
    if order == "given":
        return list(runs)

    def started(s: Mapping[str, Any]) -> str:
        run = s.get("run") or {}
        return str(run.get("started_at") or run.get("id") or "")

    if order == "date":
        return sorted(runs, key=started)
    labelled = sorted(
        (s for s in runs if (s.get("run") or {}).get("label")),
        key=lambda s: (natural_key(str(s["run"]["label"])), started(s)),
    )
    return labelled + sorted((s for s in runs if not (s.get("run") or {}).get("label")), key=started)


def x_label(summary: Mapping[str, Any]) -> str:
    run = summary.get("run") or {}
    label = run.get("label")
    date = str(run.get("started_at") or "")[:16].replace("T", " ")
    return str(label or date or run.get("id") or "?")


def parse_chart(spec: str, steps: Sequence[str]) -> Chart:
    """One chart from a spec such as ``authenticate:p50,p95`` or ``phase:token:fail_ratio,phase:socket:fail_ratio``."""
    series: list[tuple[str, Rule]] = []
    scope: str | None = None
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        rule = parse_metric_ref(item, scope)
        scope = rule.scope_key
        if rule.scope == "step" and rule.target == "*":
            series += [(f"{s} {rule.metric}", rule.for_step(s)) for s in steps]
        else:
            series.append((f"{rule.scope_key} {rule.metric_name}", rule))
    if not series:
        raise ReportError(f"chart {spec!r}: no metric")
    if len({rule.scope_key for _, rule in series}) == 1:  # one scope: the title names it, lines name metrics
        series = [(rule.metric_name, rule) for _, rule in series]
    kind = series[0][1].kind
    unit = {MS: "ms", RATIO: "%", SECONDS: "s"}.get(kind, "")
    return Chart(spec, unit, series)


def default_specs(steps: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    specs = [f"{s}:p50,p95,p99" for s in steps]
    specs.append("*:fail_ratio")
    phases = list(dict.fromkeys(p for r in runs for p in (r.get("phases") or {})))
    if phases:
        specs.append(",".join(f"phase:{p}:fail_ratio" for p in phases))
    specs += ["run:rps", "run:sessions_per_s"]
    if any(r.get("sockets") for r in runs):
        specs.append("sockets:drops_per_hour")
    if any(r.get("pings") for r in runs):
        specs.append("pings:timeout_ratio")
    return specs


def chart_values(chart: Chart, runs: Sequence[Mapping[str, Any]]) -> list[list[float | None]]:
    out = []
    for _, rule in chart.series:
        vals = []
        for r in runs:
            v, _ = metric_value(rule, r)
            vals.append(None if v is None else v * 100.0 if chart.unit == "%" else v)
        out.append(vals)
    return out


def trend_html(
    runs: Sequence[Mapping[str, Any]],
    specs: Sequence[str] | None = None,
    *,
    order: str = "date",
    title: str = "lp-harness trend",
) -> str:
    """The page: a runs table, notes on set-ups that differ, one line chart per spec with its values."""
    if not runs:
        raise ReportError("trend needs at least one run")
    ordered = order_runs(runs, order)
    steps = list(dict.fromkeys(name for r in ordered for name in (r.get("steps") or {})))
    charts = [parse_chart(s, steps) for s in (specs or default_specs(steps, ordered))]
    labels = [x_label(r) for r in ordered]
    differences = []
    for fld in ("target", "scenario", "users", "processes"):
        values = list(dict.fromkeys(str((r.get("run") or {}).get(fld)) for r in ordered))
        if len(values) > 1:
            differences.append((fld, ", ".join(values)))
    return render(
        "trend.html.j2",
        title=title,
        order=order,
        differences=differences,
        runs=[_run_row(i, r) for i, r in enumerate(ordered, 1)],
        charts=[_chart_view(chart, ordered, labels) for chart in charts],
    )


def _run_row(i: int, summary: Mapping[str, Any]) -> list[Any]:
    run = summary.get("run") or {}
    th = summary.get("thresholds")
    return [
        i,
        run.get("label") or "-",
        run.get("id") or "-",
        run.get("started_at") or "-",
        run.get("scenario"),
        run.get("users"),
        run.get("duration_s"),
        run.get("end_reason"),
        "-" if not th else ("passed" if th.get("passed") else "FAILED"),
    ]


def _chart_view(chart: Chart, runs: Sequence[Mapping[str, Any]], labels: list[str]) -> dict[str, Any]:
    """One chart's line chart and its table of values (one row per run)."""
    values = chart_values(chart, runs)
    colors = [svg.PALETTE[j % len(svg.PALETTE)] for j in range(len(chart.series))]
    return {
        "title": chart.title,
        "unit": chart.unit,
        "svg": svg.line_chart(
            chart.title,
            labels,
            [(name, colors[j], values[j]) for j, (name, _) in enumerate(chart.series)],
            unit=chart.unit,
        ),
        "header": ["run"] + [name for name, _ in chart.series],
        "rows": [
            [labels[k]] + ["-" if column[k] is None else svg.fmt_value(column[k]) for column in values]
            for k in range(len(runs))
        ],
    }


def load_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Summaries from run folders, summary files, or folders of run folders."""
    return [load_summary(p) for p in expand_runs(list(paths))]
