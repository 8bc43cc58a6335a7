"""One run's HTML page from its summary alone: how it ended, thresholds, steps, phases, charts.

Written from ``summary.json`` only, so it can be (re)made after any ending -- including SIGTERM,
when Locust skips its own HTML report. Layout: ``templates/run.html.j2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from markupsafe import Markup

from harness.reports import svg
from harness.reports.pages import render
from harness.reports.percentiles import QUANTILES, display, ms_key
from harness.reports.render import value_text

PCTS: Final = tuple((display(q), ms_key(q)) for q in QUANTILES)  # (("p50", "p50_ms"), ..., ("p99.9", ...))
MARKED_QUANTILE: Final = 0.95  # the dashed line on each distribution
BAD_ENDS: Final = ("error", "threshold abort", "target down", "sigterm", "sigint")


def run_html(summary: Mapping[str, Any]) -> str:
    run = summary.get("run") or {}
    steps = summary.get("steps") or {}
    phases = summary.get("phases") or {}
    name = str(run.get("label") or run.get("id") or "run")
    end = str(run.get("end_reason") or "running")
    return render(
        "run.html.j2",
        title=f"lp-harness run {name}",
        name=name,
        end=end,
        bad=end in BAD_ENDS,
        **{k: run.get(k) for k in ("started_at", "ended_at", "duration_s", "users", "scenario", "target")},
        thresholds=_thresholds(summary.get("thresholds")),
        step_header=["step", "phase", "count", "failures", "fail ratio", *(p for p, _ in PCTS), "max", "mean", "rps"],
        step_rows=[_step_row(n, s) for n, s in steps.items()],
        phase_rows=[
            [
                n,
                p.get("sessions"),
                p.get("failures"),
                value_text(p.get("fail_ratio"), "ratio"),
                ", ".join(f"{k} x{v}" for k, v in (p.get("categories") or {}).items()) or "-",
            ]
            for n, p in phases.items()
        ],
        other_rows=[
            ["sockets", ", ".join(f"{k} {v}" for k, v in (summary.get("sockets") or {}).items())],
            ["pings", ", ".join(f"{k} {v}" for k, v in (summary.get("pings") or {}).items())],
        ],
        charts=_charts(steps, phases),
    )


def _thresholds(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not section or not section.get("rules"):
        return None
    rules = section["rules"]
    return {
        "passed": bool(section.get("passed")),
        "rows": [
            [
                "ok" if r.get("ok") else r.get("status", "fail"),
                r.get("rule"),
                r.get("value"),
                f"{r.get('op', '')} {r.get('limit')}",
                r.get("message") or "",
            ]
            for r in rules
        ],
        "classes": ["improved" if r.get("ok") else "regressed" for r in rules],
    }


def _step_row(name: str, s: Mapping[str, Any]) -> list[Any]:
    return [
        name,
        s.get("phase"),
        s.get("count"),
        s.get("failures"),
        value_text(s.get("fail_ratio"), "ratio"),
        *(value_text(s.get(k), "ms") for _, k in PCTS),
        value_text(s.get("max_ms"), "ms"),
        value_text(s.get("mean_ms"), "ms"),
        value_text(s.get("rps"), "1/s"),
    ]


def _charts(steps: Mapping[str, Any], phases: Mapping[str, Any]) -> list[Markup]:
    names = list(steps)
    charts = [
        svg.bar_chart(
            "latency per step",
            names,
            [(label, svg.PALETTE[i], [steps[n].get(key) for n in names]) for i, (label, key) in enumerate(PCTS[:4])],
            unit="ms",
        ),
        svg.bar_chart(
            "phase failure rate",
            list(phases),
            [("fail ratio", svg.PALETTE[3], [(p.get("fail_ratio") or 0) * 100 for p in phases.values()])],
            unit="%",
        ),
    ]
    marked, key = display(MARKED_QUANTILE), ms_key(MARKED_QUANTILE)
    for n, s in steps.items():
        marks = [(marked, s[key], svg.PALETTE[3])] if s.get(key) is not None else []
        charts.append(
            svg.distribution_chart(
                f"{n}: latency distribution", [(n, s.get("histogram_ms") or {}, svg.BASE_COLOR)], marks
            )
        )
    return charts
