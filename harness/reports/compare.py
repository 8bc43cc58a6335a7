"""Compare two runs: per step and phase, base vs candidate, with a noise-aware verdict per metric.

A change is a *regression* or an *improvement* only when it is both

1. beyond the tolerance (``|change| > max(absolute, relative * base)``), and
2. beyond what the two runs' own samples can explain: for percentiles the runs' distribution-free
   order-statistic confidence intervals (from ``histogram_ms``) do not overlap; for the maximum an
   exact exceedance test; for means a Welch z-test; for failure ratios Fisher's exact test (few
   failures) or the two-proportion z-test; for throughput a Poisson rate test.

Everything is closed form, so the same two files always give the same verdicts. docs/reports.md
states the method precisely. Whether the runs are comparable at all: :mod:`.comparability`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from harness.reports import histogram as H
from harness.reports import inference
from harness.reports.comparability import Mismatch, NotComparable, Tolerance, check_comparable
from harness.reports.percentiles import QUANTILES, display, ms_key

__all__ = [
    "IMPROVED",
    "NA",
    "REGRESSED",
    "UNCHANGED",
    "NotComparable",
    "Tolerance",
    "check_comparable",
    "compare",
    "latency_rows",
    "ratio_row",
    "rps_row",
]

REGRESSED, IMPROVED, UNCHANGED, NA = "regressed", "improved", "unchanged", "n/a"
# p99.9 is not judged: a run rarely has the samples beyond it for an interval that says anything
LATENCY_METRICS: Final = tuple((display(q), q) for q in QUANTILES if q <= 0.99)
STORED_KEYS: Final = {name: ms_key(q) for name, q in LATENCY_METRICS}


# --------------------------------------------------------------------------------------- metric rows


def _row(
    metric: str, unit: str, base: float | None, cand: float | None, *, higher_is_better: bool = False, **extra: Any
) -> dict[str, Any]:
    change = rel = None
    if base is not None and cand is not None:
        change = cand - base
        rel = (change / base) if base else (0.0 if change == 0 else math.inf)
    row = {
        "metric": metric,
        "unit": unit,
        "base": base,
        "candidate": cand,
        "change": change,
        "change_rel": rel,
        "higher_is_better": higher_is_better,
        "verdict": NA,
        "beyond_tolerance": False,
        "significant": False,
        "why": "",
    }
    row.update(extra)
    return row


def _decide(row: dict[str, Any], beyond: bool, significant: bool, why: str) -> dict[str, Any]:
    row["beyond_tolerance"], row["significant"], row["why"] = beyond, significant, why
    if row["change"] is None:
        row["verdict"] = NA
    elif beyond and significant:
        worse = row["change"] < 0 if row["higher_is_better"] else row["change"] > 0
        row["verdict"] = REGRESSED if worse else IMPROVED
    else:
        row["verdict"] = UNCHANGED
    return row


def latency_rows(
    sb: Mapping[str, Any] | None, sc: Mapping[str, Any] | None, tol: Tolerance, alpha: float
) -> list[dict[str, Any]]:
    """p50/p90/p95/p99 (order-statistic intervals), mean (Welch), max (exceedance test).

    ``alpha`` is the two-sided false-alarm level of each metric's test.
    """
    hb = H.normalize((sb or {}).get("histogram_ms"))
    hc = H.normalize((sc or {}).get("histogram_ms"))
    nb, nc = H.total(hb), H.total(hc)
    level = 1.0 - alpha / 2.0  # each run's interval misses with alpha/2: non-overlap under H0 <= alpha
    rows = []
    for name, q in LATENCY_METRICS:
        vb = _stored_or_percentile(sb, hb, name, q)
        vc = _stored_or_percentile(sc, hc, name, q)
        row = _row(name, "ms", vb, vc)
        if vb is None or vc is None:
            rows.append(_decide(row, False, False, "no samples in one run"))
            continue
        cib = inference.quantile_interval(hb, q, level)
        cic = inference.quantile_interval(hc, q, level)
        row["base_ci"], row["candidate_ci"], row["ci_level"] = list(cib), list(cic), level
        beyond, tol_text = _beyond_latency(row, tol)
        apart = cic[0] > cib[1] or cic[1] < cib[0]
        ci_text = (
            f"{_pct(level)} intervals [{cib[0]:g}, {cib[1]:g}] vs [{cic[0]:g}, {cic[1]:g}] ms "
            f"{'do not overlap' if apart else 'overlap'}"
        )
        rows.append(_decide(row, beyond, apart, f"{tol_text}; {ci_text}"))
    # mean: Locust's exact mean, the spread from the histogram
    mb = _num((sb or {}).get("mean_ms")) if nb else None
    mc = _num((sc or {}).get("mean_ms")) if nc else None
    row = _row("mean", "ms", mb, mc)
    if mb is None or mc is None:
        rows.append(_decide(row, False, False, "no samples in one run"))
    else:
        _, sdb = H.mean_sd(hb)
        _, sdc = H.mean_sd(hc)
        row["base_ci"] = list(inference.mean_interval(mb, sdb, nb, level))
        row["candidate_ci"] = list(inference.mean_interval(mc, sdc, nc, level))
        row["ci_level"] = level
        beyond, tol_text = _beyond_latency(row, tol)
        p = inference.welch_p_value(mb, sdb, nb, mc, sdc, nc)
        row["p_value"] = p
        rows.append(_decide(row, beyond, p < alpha, f"{tol_text}; Welch z-test p = {p:.3g} (level {alpha:.3g})"))
    xb = _num((sb or {}).get("max_ms")) if nb else None
    xc = _num((sc or {}).get("max_ms")) if nc else None
    row = _row("max", "ms", xb, xc)
    if xb is None or xc is None:
        rows.append(_decide(row, False, False, "no samples in one run"))
    else:
        beyond, tol_text = _beyond_latency(row, tol)
        up_m, up_p = inference.max_exceedance_p(hb, hc)  # candidate samples above the base's max
        down_m, down_p = inference.max_exceedance_p(hc, hb)  # base samples above the candidate's max
        m, p = (up_m, up_p) if row["change"] >= 0 else (down_m, down_p)
        row["p_value"] = min(1.0, 2.0 * p)
        who = ("candidate", "base") if row["change"] >= 0 else ("base", "candidate")
        rows.append(
            _decide(
                row,
                beyond,
                p < alpha / 2.0,
                f"{tol_text}; {m} {who[0]} samples above the {who[1]}'s max: exceedance p = {row['p_value']:.3g} "
                f"(level {alpha:.3g})",
            )
        )
    return rows


def _beyond_latency(row: dict[str, Any], tol: Tolerance) -> tuple[bool, str]:
    limit = max(tol.absolute_ms, tol.relative * abs(row["base"]))
    beyond = abs(row["change"]) > limit
    return beyond, f"|change| {abs(row['change']):.3g} ms {'>' if beyond else '<='} tolerance {limit:.3g} ms"


def ratio_row(
    metric: str,
    xb: int | None,
    nb: int | None,
    xc: int | None,
    nc: int | None,
    tol: Tolerance,
    alpha: float,
    **extra: Any,
) -> dict[str, Any]:
    """A failure ratio x/n in each run: Fisher exact / two-proportion z-test and the ratio tolerance."""
    rb = (xb / nb if nb else 0.0) if nb is not None and xb is not None else None
    rc = (xc / nc if nc else 0.0) if nc is not None and xc is not None else None
    row = _row(metric, "ratio", rb, rc, base_n=nb, candidate_n=nc, base_count=xb, candidate_count=xc, **extra)
    if rb is None or rc is None:
        return _decide(row, False, False, "missing in one run")
    limit = max(tol.ratio, tol.relative * rb)
    beyond = abs(rc - rb) > limit
    p = inference.two_proportion_p_value(xb or 0, nb or 0, xc or 0, nc or 0)
    row["p_value"] = p
    test = "Fisher" if _small(xb, nb, xc, nc) else "two-proportion z"
    return _decide(
        row,
        beyond,
        p < alpha,
        f"|change| {abs(rc - rb):.3g} {'>' if beyond else '<='} tolerance {limit:.3g}; {test} p = {p:.3g} "
        f"(level {alpha:.3g})",
    )


def _small(xb: int | None, nb: int | None, xc: int | None, nc: int | None) -> bool:
    x, n = (xb or 0) + (xc or 0), (nb or 0) + (nc or 0)
    if not n or not nb or not nc:
        return True
    p = x / n
    return min(nb * p, nb * (1 - p), nc * p, nc * (1 - p)) < 5


def rps_row(
    sb: Mapping[str, Any] | None,
    sc: Mapping[str, Any] | None,
    db: float | None,
    dc: float | None,
    tol: Tolerance,
    alpha: float,
) -> dict[str, Any]:
    """Throughput (higher is better): the relative tolerance and a Poisson rate test on the counts."""
    vb, vc = _num((sb or {}).get("rps")), _num((sc or {}).get("rps"))
    row = _row("rps", "1/s", vb, vc, higher_is_better=True)
    if vb is None or vc is None:
        return _decide(row, False, False, "missing in one run")
    cb, cc = int((sb or {}).get("count") or 0), int((sc or {}).get("count") or 0)
    tb = cb / vb if vb else (db or 0.0)
    tc = cc / vc if vc else (dc or 0.0)
    limit = tol.relative * abs(vb)
    beyond = abs(vc - vb) > limit
    p = inference.poisson_rate_p_value(cb, tb, cc, tc)
    row["p_value"] = p
    return _decide(
        row,
        beyond,
        p < alpha,
        f"|change| {abs(vc - vb):.3g}/s {'>' if beyond else '<='} tolerance {limit:.3g}/s; Poisson rate p = {p:.3g} "
        f"(level {alpha:.3g})",
    )


def _pct(level: float) -> str:
    return f"{level * 100:.4g}%"


# ------------------------------------------------------------------------------------------ compare


def compare(
    base: Mapping[str, Any],
    candidate: Mapping[str, Any],
    tolerance: Tolerance | None = None,
    *,
    force: bool = False,
    trust_saturated: bool = False,
) -> dict[str, Any]:
    """The comparison of two summaries (a JSON-ready dict). Raises NotComparable unless ``force``.

    A run whose load generator was saturated measured its own queueing too: unless
    ``trust_saturated``, no step's latency or throughput is called regressed on its strength
    (those rows read n/a, saying why), and the comparison says which run it was.
    """
    tol = tolerance or Tolerance()
    comp = check_comparable(base, candidate, tol)
    if not comp.comparable and not force:
        raise NotComparable(comp)
    saturated = {
        side: summary["load_generator"]
        for side, summary in (("base", base), ("candidate", candidate))
        if (summary.get("load_generator") or {}).get("verdict") == "saturated"
    }
    for side, generator in saturated.items():
        comp.warnings.append(
            Mismatch(
                "load generator",
                "saturated" if side == "base" else "-",
                "saturated" if side == "candidate" else "-",
                f"the {side} run's generator was saturated {generator.get('saturated_share', 0):.1%} of it; "
                + ("judged anyway (--trust-saturated)" if trust_saturated else "its latency regressions are not called"),
            )
        )
    family = 1.0 - tol.confidence
    first = _sections(base, candidate, tol, family)  # pass 1: which metrics can be judged at all
    judged = sum(1 for _, r in _labelled(*first) if r["base"] is not None and r["candidate"] is not None)
    alpha = family / judged if tol.family_wise and judged else family
    steps, phases, other = _sections(base, candidate, tol, alpha) if alpha != family else first
    if saturated and not trust_saturated:
        _untrusted(steps, sorted(saturated))
    rows = [r for _, r in _labelled(steps, phases, other)]
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in (REGRESSED, IMPROVED, UNCHANGED, NA)}
    regressions = [
        f"{where} {r['metric']}" for where, r in _labelled(steps, phases, other) if r["verdict"] == REGRESSED
    ]
    improvements = [
        f"{where} {r['metric']}" for where, r in _labelled(steps, phases, other) if r["verdict"] == IMPROVED
    ]
    rb, rc = base.get("run") or {}, candidate.get("run") or {}
    return {
        "format": "lp-harness/compare",
        "version": 1,
        "base": _run_brief(rb),
        "candidate": _run_brief(rc),
        "tolerance": asdict(tol),
        "judged_metrics": judged,
        "alpha_per_metric": alpha,
        "comparability": comp.to_dict() | {"forced": bool(force and not comp.comparable)},
        "steps": steps,
        "phases": phases,
        "other": other,
        "counts": counts,
        "regressions": regressions,
        "improvements": improvements,
        "regressed": bool(regressions),
        "saturated_runs": sorted(saturated),
        "trust_saturated": trust_saturated,
    }


def _untrusted(steps: dict[str, Any], sides: list[str]) -> None:
    """A saturated run's slower steps are its generator's queueing as much as the target's: n/a."""
    why = f"not judged: the {' and '.join(sides)} run's load generator was saturated (--trust-saturated judges it)"
    for step in steps.values():
        for row in step["metrics"]:
            if row["verdict"] == REGRESSED and row["unit"] in ("ms", "1/s"):
                row["verdict"], row["why"] = NA, why


def _sections(
    base: Mapping[str, Any], candidate: Mapping[str, Any], tol: Tolerance, alpha: float
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    rb, rc = base.get("run") or {}, candidate.get("run") or {}
    db, dc = _num(rb.get("duration_s")), _num(rc.get("duration_s"))
    steps_b, steps_c = base.get("steps") or {}, candidate.get("steps") or {}
    steps: dict[str, Any] = {}
    for name in list(steps_b) + [n for n in steps_c if n not in steps_b]:
        sb, sc = steps_b.get(name), steps_c.get(name)
        rows = latency_rows(sb, sc, tol, alpha)
        rows.append(
            ratio_row(
                "fail_ratio",
                _int(sb, "failures"),
                _int(sb, "count"),
                _int(sc, "failures"),
                _int(sc, "count"),
                tol,
                alpha,
            )
        )
        rows.append(rps_row(sb, sc, db, dc, tol, alpha))
        steps[name] = {
            "phase": (sb or sc or {}).get("phase"),
            "count": [_int(sb, "count"), _int(sc, "count")],
            "metrics": rows,
        }
    phases: dict[str, Any] = {}
    pb_all, pc_all = base.get("phases") or {}, candidate.get("phases") or {}
    for name in list(pb_all) + [n for n in pc_all if n not in pb_all]:
        pb, pc = pb_all.get(name), pc_all.get(name)
        rows = [
            ratio_row(
                "fail_ratio",
                _int(pb, "failures"),
                _int(pb, "sessions"),
                _int(pc, "failures"),
                _int(pc, "sessions"),
                tol,
                alpha,
            )
        ]
        cats_b, cats_c = (pb or {}).get("categories") or {}, (pc or {}).get("categories") or {}
        categories = [
            ratio_row(
                f"category[{cat!r}]",
                int(cats_b.get(cat, 0)) if pb else None,
                _int(pb, "sessions"),
                int(cats_c.get(cat, 0)) if pc else None,
                _int(pc, "sessions"),
                tol,
                alpha,
                category=cat,
            )
            for cat in list(cats_b) + [c for c in cats_c if c not in cats_b]
        ]
        phases[name] = {
            "sessions": [_int(pb, "sessions"), _int(pc, "sessions")],
            "metrics": rows,
            "categories": categories,
        }
    other = []
    for section, metric, part, whole in (
        ("sockets", "drop_ratio", "drops", "opened"),
        ("pings", "timeout_ratio", "timeouts", "sent"),
        ("messages", "lost_ratio", "lost", "sent"),  # only where sessions talked (--lp-messages)
    ):
        xb, xc = base.get(section) or {}, candidate.get(section) or {}
        if (xb or xc) and (section != "messages" or xb.get("sent") or xc.get("sent")):
            row = ratio_row(f"{section} {metric}", _int(xb, part), _int(xb, whole), _int(xc, part), _int(xc, whole), tol, alpha)
            other.append(row)
    return steps, phases, other


def _labelled(steps: dict[str, Any], phases: dict[str, Any], other: list[dict[str, Any]]):
    for name, s in steps.items():
        for r in s["metrics"]:
            yield name, r
    for name, p in phases.items():
        for r in p["metrics"] + p["categories"]:
            yield f"phase:{name}", r
    for r in other:
        yield "run", r


def _run_brief(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "label", "started_at", "duration_s", "end_reason", "users", "scenario", "target", "harness_version")
    return {k: run.get(k) for k in keys}


def _stored_or_percentile(step: Mapping[str, Any] | None, hist: dict[int, int], name: str, q: float) -> float | None:
    n = H.total(hist)
    if not step or not n:
        return None
    stored = step.get(STORED_KEYS[name])
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        return float(stored)
    return float(H.percentile(hist, n, q))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(d: Mapping[str, Any] | None, key: str) -> int | None:
    if not d:
        return None
    v = d.get(key)
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
