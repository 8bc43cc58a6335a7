"""One run's HTML page from its summary alone: how it ended, thresholds, the load shape, steps, phases, charts.

Written from ``summary.json`` only, so it can be (re)made after any ending -- including SIGTERM,
when Locust skips its own HTML report. Layout: ``templates/run.html.j2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from markupsafe import Markup

from harness.reports import svg
from harness.reports.loadshape import arrival_line, asked_rate, breakpoint_verdict, broken_text, step_status
from harness.reports.pages import render
from harness.reports.percentiles import QUANTILES, display, ms_key
from harness.reports.render import value_text
from harness.reports.summary import verdict_line

PCTS: Final = tuple((display(q), ms_key(q)) for q in QUANTILES)  # (("p50", "p50_ms"), ..., ("p99.9", ...))
MARKED_QUANTILE: Final = 0.95  # the dashed line on each distribution
BAD_ENDS: Final = ("error", "threshold abort", "target down", "sigterm", "sigint")
HELD_STEPS: Final = ("hold",)  # seconds long: charted apart from the requests' milliseconds


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
        breakpoint=_breakpoint(summary.get("breakpoint")),
        arrival=_arrival(summary.get("arrival")),
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
            [
                "sockets",
                ", ".join(f"{k} {v}" for k, v in (summary.get("sockets") or {}).items() if k != "server_closes"),
            ],
            ["pings", ", ".join(f"{k} {v}" for k, v in (summary.get("pings") or {}).items())],
        ],
        server_closes=sorted(
            [code, n] for code, n in ((summary.get("sockets") or {}).get("server_closes") or {}).items()
        ),
        generator=_generator(summary.get("load_generator")),
        charts=_charts(steps, phases),
        timeline=_timeline_charts(summary.get("timeline")),
    )


def _timeline_charts(section: Mapping[str, Any] | None) -> list[Markup]:
    """The run over time: latency per step, sockets against users, drops, failures, the generator."""
    rows = (section or {}).get("rows") or []
    if len(rows) < 2:
        return []
    x = [f"{r['t_s']:g} s" for r in rows]
    names = [n for n in dict.fromkeys(n for r in rows for n in r["steps"]) if n not in HELD_STEPS]

    def chart(title: str, series: list[tuple[str, list[float | None]]], unit: str) -> Markup:
        colored = [(name, svg.PALETTE[i % len(svg.PALETTE)], vals) for i, (name, vals) in enumerate(series)]
        return svg.line_chart(title, x, colored, unit=unit, max_labels=24)

    def per_interval(r: Mapping[str, Any], n: float) -> float:
        return n / r["interval_s"] if r.get("interval_s") else 0.0

    categories = sorted({c for r in rows for p in r["phases"].values() for c in p})
    charts = [
        chart(
            f"{key[:3]} latency over time", [(n, [r["steps"].get(n, {}).get(key) for r in rows]) for n in names], "ms"
        )
        for key in ("p50_ms", "p95_ms", "p99_ms")
    ]
    charts.append(
        chart(
            "open sockets and users",
            [("open sockets", [r["sockets"]["open"] for r in rows]), ("users", [r["users"] for r in rows])],
            "",
        )
    )
    charts.append(
        chart(
            "drops and server closes per second",
            [
                ("drops", [per_interval(r, r["sockets"].get("drops", 0)) for r in rows]),
                ("server closes", [per_interval(r, sum(r["sockets"].get("server_closes", {}).values())) for r in rows]),
            ],
            "/s",
        )
    )
    if categories:
        failures = [
            (c, [per_interval(r, sum(p.get(c, 0) for p in r["phases"].values())) for r in rows]) for c in categories
        ]
        charts.append(chart("failed sessions per second, by category", failures, "/s"))
    generator = [r.get("load_generator") or {} for r in rows]
    charts.append(
        chart(
            "load generator",
            [
                ("CPU %", [g.get("cpu_percent") for g in generator]),
                ("loop lag ms", [g.get("loop_lag_ms") for g in generator]),
            ],
            "",
        )
    )
    return charts


def _generator(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The load generator's verdict, when it was saturated, and each process's health."""
    if not section:
        return None
    return {
        "verdict": section.get("verdict"),
        "saturated": section.get("verdict") == "saturated",
        "line": verdict_line(section),
        "periods": [
            [p.get("from_s"), p.get("to_s"), ", ".join(p.get("processes") or []), "; ".join(p.get("reasons") or [])]
            for p in section.get("saturated_periods") or []
        ],
        "header": [
            "process",
            "CPU mean",
            "CPU max",
            "loop busy max",
            "loop lag mean",
            "p99",
            "max",
            "longest GC pause",
            "RSS max",
            "open files",
            "saturated",
        ],
        "rows": [
            [
                r.get("id"),
                _percent(r.get("cpu_percent_mean")),
                _percent(r.get("cpu_percent_max")),
                _percent(r.get("loop_busy_percent_max")),
                value_text(r.get("loop_lag_mean_ms"), "ms"),
                value_text(r.get("loop_lag_p99_ms"), "ms"),
                value_text(r.get("loop_lag_max_ms"), "ms"),
                value_text(r.get("gc_pause_max_ms"), "ms"),
                f"{(r.get('rss_max_bytes') or 0) / 1e6:.0f} MB",
                f"{r.get('fds_max')} of {r.get('fd_limit') or '-'}",
                f"{r.get('saturated_s') or 0:g} s",
            ]
            for r in section.get("processes") or []
        ],
    }


def _breakpoint(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The breakpoint's verdict, its knee and what broke it, and every step tried (docs/shapes.md)."""
    if not section:
        return None
    steps = section.get("steps") or []
    knee, broke = section.get("knee_users"), section.get("broke_at_users")
    planned = section.get("steps_planned")
    return {
        "verdict": section.get("verdict"),
        "tone": {"no step held": "bad", "incomplete": "warn"}.get(str(section.get("verdict")), ""),
        "line": breakpoint_verdict(section),
        "facts": [
            ["knee", "-" if knee is None else f"{knee} users (step {section.get('knee_step')} of {planned})"],
            ["broke at", "-" if broke is None else f"{broke} users"],
            ["broken by", broken_text(section.get("broken_by")) or "-"],
            ["steps", f"{len(steps)} tried of {planned}, {_seconds(section.get('step_s'))} each, "
                      f"up to {section.get('max_users')} users"],
            ["rules", "; ".join(section.get("rules") or []) or "-"],
        ],  # fmt: skip
        "header": ["step", "users", "window", "length", "status", "broken rules"],
        "rows": [
            [
                s.get("step"),
                s.get("users"),
                f"from {s.get('from_s'):g} s" if s.get("to_s") is None else f"{s.get('from_s'):g} .. {s['to_s']:g} s",
                _seconds(s.get("window_s")),
                step_status(s),
                broken_text(s.get("broken")) or "-",
            ]
            for s in steps
        ],
        "classes": [{"held": "improved", "broke": "regressed"}.get(str(s.get("status")), "") for s in steps],
    }


def _arrival(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The open model's rate: asked against achieved, what was dropped or late, and kept or why not."""
    if not section:
        return None
    due, started, dropped = section.get("due") or 0, section.get("started") or 0, section.get("dropped") or 0
    ramp = section.get("ramp_s")
    return {
        "kept": bool(section.get("kept")),
        "line": arrival_line(section),
        "rows": [
            ["rate asked", asked_rate(section) + (f", ramped over {ramp:g} s" if ramp else "")],
            ["target rate", f"{value_text(section.get('target_rate'), '1/s')} (the plan's arrivals over the run)"],
            ["achieved rate", f"{value_text(section.get('achieved_rate'), '1/s')} "
                              f"({started} sessions in {_seconds(section.get('duration_s'))})"],
            ["due", due],
            ["started", started],
            ["dropped", f"{dropped} ({value_text(dropped / due if due else 0.0, 'ratio')} of due): no free user"],
            ["late", f"{section.get('late') or 0} (worst {value_text(section.get('late_max_ms'), 'ms')})"],
            ["max concurrent", f"{section.get('max_concurrent')} of {section.get('users') or '-'} users"],
            ["processes", section.get("processes")],
            ["kept", "yes" if section.get("kept") else f"NO: {section.get('warning')}"],
        ],  # fmt: skip
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


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
    # the hold lasts seconds and the requests milliseconds: on one axis the hold would flatten them
    charts = [
        svg.bar_chart(
            title,
            names,
            [(label, svg.PALETTE[i], [steps[n].get(key) for n in names]) for i, (label, key) in enumerate(PCTS[:4])],
            unit="ms",
        )
        for title, names in (
            ("latency per step", [n for n in steps if n not in HELD_STEPS]),
            ("hold", [n for n in steps if n in HELD_STEPS]),
        )
        if names
    ]
    charts += [
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
