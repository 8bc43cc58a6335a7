"""A comparison (``compare.compare``'s dict) as a terminal table, Markdown and a self-contained HTML page."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any

from harness.reports import svg
from harness.reports.compare import IMPROVED, NA, REGRESSED, UNCHANGED
from harness.reports.pages import page, table

MARK = {REGRESSED: "REGRESSED", IMPROVED: "improved", UNCHANGED: "", NA: "n/a"}
MD_MARK = {REGRESSED: "🔴 regressed", IMPROVED: "🟢 improved", UNCHANGED: "unchanged", NA: "n/a"}
SUMMARY_METRICS = ("p50", "p95", "p99", "fail_ratio", "rps")


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
    nb, nc = "base", "candidate"
    body = [f"<h1>lp-harness compare</h1><p>base <b>{escape(b)}</b> vs candidate <b>{escape(c)}</b></p>"]
    counts = result["counts"]
    cls = "bad" if counts[REGRESSED] else "box"
    body.append(
        f'<div class="box {cls}"><b>{escape(verdict_line(result))}</b><br/>'
        f'<span class="muted">{escape(_tolerance_line(result))}</span></div>'
    )
    comp = result["comparability"]
    if comp["refusals"] or comp["warnings"]:
        items = [
            f"<li><b>not comparable{' (forced)' if comp.get('forced') else ''}:</b> {escape(m['text'])}</li>"
            for m in comp["refusals"]
        ] + [f"<li>{escape(m['text'])}</li>" for m in comp["warnings"]]
        body.append(f'<div class="box warn"><b>What differs between the runs</b><ul>{"".join(items)}</ul></div>')
    body.append(_runs_table(base, candidate))
    steps = list(result["steps"])
    body.append('<h2>Overview</h2><div class="charts">')
    for metric in ("p50", "p95"):
        vals = [
            [_metric(result, s, metric, "base") for s in steps],
            [_metric(result, s, metric, "candidate") for s in steps],
        ]
        body.append(
            svg.bar_chart(
                f"{metric} per step", steps, [(nb, svg.BASE_COLOR, vals[0]), (nc, svg.CAND_COLOR, vals[1])], unit="ms"
            )
        )
    phases = list(result["phases"])
    pvals = [[_pct(result["phases"][p]["metrics"][0][who]) for p in phases] for who in ("base", "candidate")]
    body.append(
        svg.bar_chart(
            "phase failure rate", phases, [(nb, svg.BASE_COLOR, pvals[0]), (nc, svg.CAND_COLOR, pvals[1])], unit="%"
        )
    )
    fvals = [[_pct(_metric(result, s, "fail_ratio", who)) for s in steps] for who in ("base", "candidate")]
    body.append(
        svg.bar_chart(
            "step failure rate", steps, [(nb, svg.BASE_COLOR, fvals[0]), (nc, svg.CAND_COLOR, fvals[1])], unit="%"
        )
    )
    body.append("</div>")
    body.append("<h2>Steps</h2>")
    sb_all, sc_all = base.get("steps") or {}, candidate.get("steps") or {}
    for name, s in result["steps"].items():
        hb = (sb_all.get(name) or {}).get("histogram_ms") or {}
        hc = (sc_all.get(name) or {}).get("histogram_ms") or {}
        by = {r["metric"]: r for r in s["metrics"]}
        markers = []
        if by.get("p95") and by["p95"]["base"] is not None:
            markers.append(("base p95", by["p95"]["base"], svg.BASE_COLOR))
        if by.get("p95") and by["p95"]["candidate"] is not None:
            markers.append(("candidate p95", by["p95"]["candidate"], svg.CAND_COLOR))
        body.append(
            f'<h3 id="step-{escape(name, quote=True)}">{escape(name)} <span class="muted">'
            f"({escape(str(s.get('phase')))}, n = {escape(_pair(s['count']))})</span></h3>"
        )
        body.append('<div class="charts">')
        body.append(
            svg.distribution_chart(
                f"{name}: latency distribution", [(nb, hb, svg.BASE_COLOR), (nc, hc, svg.CAND_COLOR)], markers
            )
        )
        pm = ("p50", "p90", "p95", "p99", "mean")
        series, errors = [], []
        for who, label, color in (("base", nb, svg.BASE_COLOR), ("candidate", nc, svg.CAND_COLOR)):
            series.append((label, color, [by[m][who] if m in by else None for m in pm]))
            errors.append([tuple(by[m][f"{who}_ci"]) if m in by and by[m].get(f"{who}_ci") else None for m in pm])
        body.append(
            svg.bar_chart(f"{name}: percentiles (whiskers: intervals used)", list(pm), series, unit="ms", errors=errors)
        )
        body.append("</div>")
        body.append(_rows_table(s["metrics"]))
    body.append("<h2>Phases</h2>")
    for name, p in result["phases"].items():
        body.append(f'<h3>{escape(name)} <span class="muted">(sessions {escape(_pair(p["sessions"]))})</span></h3>')
        body.append(_rows_table(p["metrics"] + p["categories"]))
    if result["other"]:
        body.append("<h2>Sockets and pings</h2>" + _rows_table(result["other"]))
    body.append('<p class="muted">How verdicts are decided: docs/reports.md ("compare"). Generated by lp-harness.</p>')
    return page(f"lp-harness compare: {b} vs {c}", "\n".join(body))


def _metric(result: Mapping[str, Any], step: str, metric: str, who: str) -> float | None:
    for r in result["steps"][step]["metrics"]:
        if r["metric"] == metric:
            return r[who]
    return None


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100.0


def _rows_table(rows: list[Mapping[str, Any]]) -> str:
    cells, classes = [], []
    for r in rows:
        cells.append(
            [
                escape(r["metric"]),
                escape(value_text(r["base"], r["unit"])),
                escape(value_text(r["candidate"], r["unit"])),
                escape(change_text(r)),
                escape(r["verdict"]),
                f'<span class="why">{escape(r.get("why") or "")}</span>',
            ]
        )
        classes.append({REGRESSED: "regressed", IMPROVED: "improved", NA: "na"}.get(r["verdict"], "unchanged"))
    return table(["metric", "base", "candidate", "change", "verdict", "why"], cells, classes=classes)


def _runs_table(base: Mapping[str, Any], candidate: Mapping[str, Any]) -> str:
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
    rows = [[escape(k), escape(str(rb.get(k))), escape(str(rc.get(k)))] for k in keys]
    return table(["run", "base", "candidate"], rows, left=3)
