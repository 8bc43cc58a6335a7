"""One run's HTML page from its summary alone: how it ended, thresholds, steps, phases, charts.

Written from ``summary.json`` only, so it can be (re)made after any ending -- including SIGTERM,
when Locust skips its own HTML report.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from harness.reports import svg
from harness.reports.pages import page, table
from harness.reports.render import value_text

PCTS = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"), ("p99.9", "p99_9_ms"))


def run_html(summary: Mapping[str, Any]) -> str:
    run = summary.get("run") or {}
    steps = summary.get("steps") or {}
    phases = summary.get("phases") or {}
    name = str(run.get("label") or run.get("id") or "run")
    end = str(run.get("end_reason") or "running")
    body = [f"<h1>lp-harness run {escape(name)}</h1>"]
    bad = end in ("error", "threshold abort", "sigterm", "sigint")
    body.append(
        f'<div class="box {"bad" if bad else ""}">ended: <b>{escape(end)}</b> &#183; '
        f"{escape(str(run.get('started_at')))} .. {escape(str(run.get('ended_at')))} "
        f"({escape(str(run.get('duration_s')))} s) &#183; {escape(str(run.get('users')))} users &#183; "
        f"scenario {escape(str(run.get('scenario')))} &#183; target {escape(str(run.get('target')))}</div>"
    )
    th = summary.get("thresholds")
    if th and th.get("rules"):
        rows = [
            [
                escape("ok" if r.get("ok") else r.get("status", "fail")),
                escape(str(r.get("rule"))),
                escape(str(r.get("value"))),
                escape(f"{r.get('op', '')} {r.get('limit')}"),
                escape(str(r.get("message") or "")),
            ]
            for r in th["rules"]
        ]
        classes = ["improved" if r.get("ok") else "regressed" for r in th["rules"]]
        body.append(f"<h2>Thresholds: {'passed' if th.get('passed') else 'FAILED'}</h2>")
        body.append(table(["", "rule", "value", "limit", "detail"], rows, left=2, classes=classes))
    rows = []
    for n, s in steps.items():
        rows.append(
            [
                escape(n),
                escape(str(s.get("phase"))),
                str(s.get("count")),
                str(s.get("failures")),
                escape(value_text(s.get("fail_ratio"), "ratio")),
            ]
            + [escape(value_text(s.get(k), "ms")) for _, k in PCTS]
            + [
                escape(value_text(s.get("max_ms"), "ms")),
                escape(value_text(s.get("mean_ms"), "ms")),
                escape(value_text(s.get("rps"), "1/s")),
            ]
        )
    body.append("<h2>Steps</h2>")
    body.append(
        table(
            ["step", "phase", "count", "failures", "fail ratio", *(p for p, _ in PCTS), "max", "mean", "rps"],
            rows,
            left=2,
        )
    )
    prow = [
        [
            escape(n),
            str(p.get("sessions")),
            str(p.get("failures")),
            escape(value_text(p.get("fail_ratio"), "ratio")),
            escape(", ".join(f"{k} x{v}" for k, v in (p.get("categories") or {}).items()) or "-"),
        ]
        for n, p in phases.items()
    ]
    body.append("<h2>Phases</h2>" + table(["phase", "sessions", "failures", "fail ratio", "categories"], prow, left=1))
    sockets, pings = summary.get("sockets") or {}, summary.get("pings") or {}
    body.append(
        "<h2>Sockets and pings</h2>"
        + table(
            ["", "values"],
            [
                ["sockets", escape(", ".join(f"{k} {v}" for k, v in sockets.items()))],
                ["pings", escape(", ".join(f"{k} {v}" for k, v in pings.items()))],
            ],
            left=2,
        )
    )
    body.append('<h2>Charts</h2><div class="charts">')
    names = list(steps)
    body.append(
        svg.bar_chart(
            "latency per step",
            names,
            [(label, svg.PALETTE[i], [steps[n].get(key) for n in names]) for i, (label, key) in enumerate(PCTS[:4])],
            unit="ms",
        )
    )
    body.append(
        svg.bar_chart(
            "phase failure rate",
            list(phases),
            [("fail ratio", svg.PALETTE[3], [(p.get("fail_ratio") or 0) * 100 for p in phases.values()])],
            unit="%",
        )
    )
    for n, s in steps.items():
        marks = [(f"p{q}", s[k], svg.PALETTE[3]) for q, k in (("95", "p95_ms"),) if s.get(k) is not None]
        body.append(
            svg.distribution_chart(
                f"{n}: latency distribution", [(n, s.get("histogram_ms") or {}, svg.BASE_COLOR)], marks
            )
        )
    body.append("</div>")
    return page(f"lp-harness run {name}", "\n".join(body))
