"""A comparison (``compare.compare``'s dict) as a terminal table, Markdown and a self-contained HTML page.

The page's layout is ``templates/compare.html.j2``; this module chooses what goes in it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from markupsafe import Markup

from harness.reports import svg
from harness.reports.compare import IMPROVED, LATENCY_METRICS, NA, REGRESSED, UNCHANGED
from harness.reports.pages import render

MARK = {REGRESSED: "REGRESSED", IMPROVED: "improved", UNCHANGED: "", NA: "n/a"}
MD_MARK = {REGRESSED: "🔴 regressed", IMPROVED: "🟢 improved", UNCHANGED: "unchanged", NA: "n/a"}
SUMMARY_METRICS = ("p50", "p95", "p99", "fail_ratio", "rps")  # the Markdown table's columns
RUN_COLORS: Final = {"base": svg.BASE_COLOR, "candidate": svg.CAND_COLOR}
BAR_METRICS: Final = (*(name for name, _ in LATENCY_METRICS), "mean")  # each step's percentile bars


def value_text(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 10 and v != int(v) else f"{v:.0f} ms"
    if unit == "ratio":
        return f"{v * 100:.2f}%"
    if unit == "1/s":
        return f"{v:.3g}/s"
    return f"{v:g}"


def change_text(row: Mapping[str, Any]) -> str:
    ch, rel, unit = row.get("change"), row.get("change_rel"), row["unit"]
    if ch is None:
        return "-"
    if unit == "ratio":
        return f"{ch * 100:+.2f} pp"
    rel_text = "" if rel is None else (" (new)" if math.isinf(rel) else f" ({rel * 100:+.0f}%)")
    if unit == "ms":
        return f"{ch:+.1f} ms{rel_text}" if abs(ch) < 10 else f"{ch:+.0f} ms{rel_text}"
    if unit == "1/s":
        return f"{ch:+.3g}/s{rel_text}"
    return f"{ch:+g}{rel_text}"


def _runs_line(result: Mapping[str, Any]) -> tuple[str, str]:
    def one(r: Mapping[str, Any]) -> str:
        label = f" ({r['label']})" if r.get("label") else ""
        return f"{r.get('id') or '?'}{label}"

    return one(result["base"]), one(result["candidate"])


def _tolerance_line(result: Mapping[str, Any]) -> str:
    t = result["tolerance"]
    fam = "family-wise over" if t.get("family_wise") else "per metric,"
    return (
        f"tolerance {t['relative']:.0%} / {t['absolute_ms']:g} ms / {t['ratio'] * 100:g} pp; "
        f"confidence {t['confidence']:.0%} {fam} {result.get('judged_metrics', 0)} metrics "
        f"(level {result.get('alpha_per_metric', 0):.2g} each)"
    )


def verdict_line(result: Mapping[str, Any]) -> str:
    c = result["counts"]
    return f"{c[REGRESSED]} regressed, {c[IMPROVED]} improved, {c[UNCHANGED]} unchanged, {c[NA]} n/a"


def _sections(result: Mapping[str, Any]):
    for name, s in result["steps"].items():
        yield f"{name} ({s.get('phase') or '?'})", f"n = {_pair(s['count'])}", s["metrics"]
    for name, p in result["phases"].items():
        yield f"phase {name}", f"sessions = {_pair(p['sessions'])}", p["metrics"] + p["categories"]
    if result["other"]:
        yield "sockets / pings", "", result["other"]


def _pair(pair: list[Any]) -> str:
    return f"{'-' if pair[0] is None else pair[0]} / {'-' if pair[1] is None else pair[1]}"


def terminal(result: Mapping[str, Any]) -> str:
    """The comparison as a fixed-width table for a terminal or CI log."""
    b, c = _runs_line(result)
    lines = [f"compare: base {b}  vs  candidate {c}", _tolerance_line(result)]
    comp = result["comparability"]
    for m in comp["refusals"]:
        lines.append(f"  NOT COMPARABLE{' (forced)' if comp.get('forced') else ''}: {m['text']}")
    for m in comp["warnings"]:
        lines.append(f"  note: {m['text']}")
    rows = [("", "base", "candidate", "change", "verdict")]
    for title, sub, metrics in _sections(result):
        rows.append((title, sub, "", "", ""))
        for r in metrics:
            rows.append(
                (
                    f"  {r['metric']}",
                    value_text(r["base"], r["unit"]),
                    value_text(r["candidate"], r["unit"]),
                    change_text(r),
                    MARK[r["verdict"]],
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) if i < 4 else cell
                for i, cell in enumerate(row)
            ).rstrip()
        )
    lines.append(f"verdict: {verdict_line(result)}")
    if result["regressions"]:
        lines.append("regressed: " + ", ".join(result["regressions"]))
    if result["improvements"]:
        lines.append("improved: " + ", ".join(result["improvements"]))
    return "\n".join(lines)


def markdown(result: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown for a pull request: a compact table, then every changed metric's reason."""
    b, c = _runs_line(result)
    out = [
        f"### lp-harness compare: `{b}` → `{c}`",
        "",
        f"**{verdict_line(result)}**  ",
        f"_{_tolerance_line(result)}_",
        "",
    ]
    comp = result["comparability"]
    for m in comp["refusals"]:
        out.append(f"> ⚠️ **not comparable**{' (forced)' if comp.get('forced') else ''}: {_md(m['text'])}  ")
    for m in comp["warnings"]:
        out.append(f"> note: {_md(m['text'])}  ")
    if comp["refusals"] or comp["warnings"]:
        out.append("")
    out.append("| step | " + " | ".join(SUMMARY_METRICS) + " |")
    out.append("|---|" + "---:|" * len(SUMMARY_METRICS))
    for name, s in result["steps"].items():
        by = {r["metric"]: r for r in s["metrics"]}
        cells = []
        for m in SUMMARY_METRICS:
            r = by.get(m)
            if not r:
                cells.append("-")
                continue
            mark = " 🔴" if r["verdict"] == REGRESSED else " 🟢" if r["verdict"] == IMPROVED else ""
            cells.append(f"{value_text(r['base'], r['unit'])} → {value_text(r['candidate'], r['unit'])}{mark}")
        out.append(f"| {_md(name)} | " + " | ".join(cells) + " |")
    out += ["", "| phase | sessions | fail ratio | verdict |", "|---|---:|---:|---|"]
    for name, p in result["phases"].items():
        r = p["metrics"][0]
        out.append(
            f"| {_md(name)} | {_pair(p['sessions'])} | {value_text(r['base'], 'ratio')} → "
            f"{value_text(r['candidate'], 'ratio')} | {MD_MARK[r['verdict']]} |"
        )
    changed = [(t, r) for t, _, rows in _sections(result) for r in rows if r["verdict"] in (REGRESSED, IMPROVED)]
    if changed:
        out += ["", "<details><summary>Why each change counts</summary>", ""]
        for title, r in changed:
            out.append(
                f"- **{_md(title)} {_md(r['metric'])}** {MD_MARK[r['verdict']]}: {change_text(r)} — {_md(r['why'])}"
            )
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def html(result: Mapping[str, Any], base: Mapping[str, Any], candidate: Mapping[str, Any]) -> str:
    """A self-contained page: overview charts, per-step distributions and percentile bars, phase failures."""
    b, c = _runs_line(result)
    comp = result["comparability"]
    steps = list(result["steps"])
    return render(
        "compare.html.j2",
        title=f"lp-harness compare: {b} vs {c}",
        base=b,
        candidate=c,
        verdict=verdict_line(result),
        tolerance=_tolerance_line(result),
        regressed=bool(result["counts"][REGRESSED]),
        refusals=[m["text"] for m in comp["refusals"]],
        warnings=[m["text"] for m in comp["warnings"]],
        forced=bool(comp.get("forced")),
        run_rows=_run_rows(base, candidate),
        overview=_overview_charts(result, steps, base, candidate),
        steps=[_step_view(result, name, base, candidate) for name in steps],
        phases=[
            {"name": name, "sessions": _pair(p["sessions"]), "rows": _verdict_rows(p["metrics"] + p["categories"])}
            for name, p in result["phases"].items()
        ],
        other=_verdict_rows(result["other"]),
    )


def _overview_charts(
    result: Mapping[str, Any], steps: list[str], base: Mapping[str, Any], candidate: Mapping[str, Any]
) -> list[Markup]:
    """p50 and p95 per step, then phase and step failure rates: base and candidate side by side."""
    phases = list(result["phases"])
    charts = []
    for metric in ("p50", "p95"):
        values = {who: [_metric(result, s, metric, who) for s in steps] for who in RUN_COLORS}
        charts.append(svg.bar_chart(f"{metric} per step", steps, _both_runs(values), unit="ms"))
    values = {who: [_pct(result["phases"][p]["metrics"][0][who]) for p in phases] for who in RUN_COLORS}
    charts.append(svg.bar_chart("phase failure rate", phases, _both_runs(values), unit="%"))
    values = {who: [_pct(_metric(result, s, "fail_ratio", who)) for s in steps] for who in RUN_COLORS}
    charts.append(svg.bar_chart("step failure rate", steps, _both_runs(values), unit="%"))
    return charts + _over_time("open sockets over time", base, candidate, lambda r: r["sockets"]["open"], "")


def _step_p95(row: Mapping[str, Any], name: str) -> float | None:
    return ((row.get("steps") or {}).get(name) or {}).get("p95_ms")


def _over_time(
    title: str, base: Mapping[str, Any], candidate: Mapping[str, Any], value: Any, unit: str
) -> list[Markup]:
    """Both runs' timelines overlaid, by seconds into each run; none when either run has no timeline."""
    rows = {
        who: ((run.get("timeline") or {}).get("rows") or []) for who, run in (("base", base), ("candidate", candidate))
    }
    if any(len(r) < 2 for r in rows.values()):
        return []
    times = sorted({r["t_s"] for runs in rows.values() for r in runs})
    values = {who: [next((value(r) for r in runs if r["t_s"] == t), None) for t in times] for who, runs in rows.items()}
    if all(v is None for vals in values.values() for v in vals):
        return []  # a step neither run had over time
    return [svg.line_chart(title, [f"{t:g} s" for t in times], _both_runs(values), unit=unit, max_labels=24)]


def _both_runs(values: Mapping[str, list[float | None]]) -> list[tuple[str, str, list[float | None]]]:
    """Chart series for the base and the candidate, each in its colour."""
    return [(who, color, values[who]) for who, color in RUN_COLORS.items()]


def _step_view(
    result: Mapping[str, Any], name: str, base: Mapping[str, Any], candidate: Mapping[str, Any]
) -> dict[str, Any]:
    """One step's section: both runs' distributions with their p95, the percentile bars, the rows."""
    s = result["steps"][name]
    hb = ((base.get("steps") or {}).get(name) or {}).get("histogram_ms") or {}
    hc = ((candidate.get("steps") or {}).get(name) or {}).get("histogram_ms") or {}
    by = {r["metric"]: r for r in s["metrics"]}
    markers = []
    if by.get("p95") and by["p95"]["base"] is not None:
        markers.append(("base p95", by["p95"]["base"], svg.BASE_COLOR))
    if by.get("p95") and by["p95"]["candidate"] is not None:
        markers.append(("candidate p95", by["p95"]["candidate"], svg.CAND_COLOR))
    bars = {who: [by[m][who] if m in by else None for m in BAR_METRICS] for who in RUN_COLORS}
    errors = [
        [tuple(by[m][f"{who}_ci"]) if m in by and by[m].get(f"{who}_ci") else None for m in BAR_METRICS]
        for who in RUN_COLORS
    ]
    charts = [
        svg.distribution_chart(
            f"{name}: latency distribution",
            [("base", hb, svg.BASE_COLOR), ("candidate", hc, svg.CAND_COLOR)],
            markers,
        ),
        svg.bar_chart(
            f"{name}: percentiles (whiskers: intervals used)",
            list(BAR_METRICS),
            _both_runs(bars),
            unit="ms",
            errors=errors,
        ),
    ]
    charts += _over_time(f"{name}: p95 over time", base, candidate, lambda r: _step_p95(r, name), "ms")
    return {
        "name": name,
        "phase": s.get("phase"),
        "n": _pair(s["count"]),
        "charts": charts,
        "rows": _verdict_rows(s["metrics"]),
    }


def _metric(result: Mapping[str, Any], step: str, metric: str, who: str) -> float | None:
    for r in result["steps"][step]["metrics"]:
        if r["metric"] == metric:
            return r[who]
    return None


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100.0


def _verdict_rows(rows: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Comparison rows as the page's verdict tables show them (row class = the verdict)."""
    return [
        {
            "metric": r["metric"],
            "base": value_text(r["base"], r["unit"]),
            "candidate": value_text(r["candidate"], r["unit"]),
            "change": change_text(r),
            "verdict": r["verdict"],
            "why": r.get("why") or "",
            "cls": {REGRESSED: "regressed", IMPROVED: "improved", NA: "na"}.get(r["verdict"], "unchanged"),
        }
        for r in rows
    ]


def _run_rows(base: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[list[Any]]:
    keys = (
        "id",
        "label",
        "started_at",
        "duration_s",
        "end_reason",
        "scenario",
        "users",
        "spawn_rate",
        "processes",
        "target",
        "harness_version",
        "locust_version",
    )
    rb, rc = base.get("run") or {}, candidate.get("run") or {}
    return [[k, rb.get(k), rc.get(k)] for k in keys]
