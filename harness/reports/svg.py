"""Inline SVG charts, written as text: no matplotlib, no JavaScript, no network.

Each chart function returns one ``<svg>`` element (well-formed XML, so the pages parse as XHTML too)
with a ``<title>`` for screen readers and ``<title>`` tooltips on the data marks. The element is
``Markup``: it escapes its own text, and the page templates (autoescaped) write it as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

from markupsafe import Markup

from harness.reports import histogram as H

BASE_COLOR: Final = "#4c78a8"
CAND_COLOR: Final = "#f58518"
PALETTE: Final = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")
FONT: Final = "font-family:system-ui,sans-serif;font-size:11px"
W, HGT = 640, 260
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 56, 16, 28, 44


def _a(v: object) -> str:
    return escape(str(v), quote=True)


def _f(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _open(title: str, width: int = W, height: int = HGT, css_class: str = "chart") -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{_a(css_class)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" style="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{M_LEFT}" y="16" font-weight="600" font-size="12">{escape(title)}</text>',
    ]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-number ticks covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9 or not ticks or ticks[-1] < hi:
        ticks.append(round(t, 10))
        t += step
    return ticks


LOG_TICKS: Final = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def _log(x: float) -> float:
    return math.log10(max(x, 0.0) + 1.0)


def fmt_value(v: float, unit: str = "") -> str:
    if unit == "%":
        return f"{v:.3g}%"
    text = f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"
    return f"{text} {unit}".strip()


def distribution_chart(
    title: str, hists: Sequence[tuple[str, Mapping[int, int], str]], markers: Sequence[tuple[str, float, str]] = ()
) -> Markup:
    """Overlaid latency distributions from Locust histograms on a log(1+ms) axis.

    Each bucket becomes a bar of height ``fraction / width-on-the-axis``, so areas compare fairly
    although Locust's buckets widen with the value (1 ms below 100, 10 ms below 1000, ...).
    ``markers``: (label, ms, color) dashed verticals, e.g. each run's p95.
    """
    parts = _open(title)
    data = [(name, H.normalize(h), color) for name, h, color in hists]
    data = [(n, h, c) for n, h, c in data if h]
    if not data:
        parts.append(f'<text x="{M_LEFT}" y="{HGT // 2}">no samples</text></svg>')
        return Markup("\n".join(parts))
    lo = min(min(h) for _, h, _ in data)
    hi = max(max(h) for _, h, _ in data)
    x_lo = _log(H.bucket_span(lo)[0])
    x_hi = _log(H.bucket_span(hi)[1])
    if x_hi - x_lo < 0.3:  # very narrow: pad so a single bucket is still a readable bar
        mid = (x_hi + x_lo) / 2
        x_lo, x_hi = max(mid - 0.15, 0.0), mid + 0.15
    pw, ph = W - M_LEFT - M_RIGHT, HGT - M_TOP - M_BOTTOM

    def sx(v: float) -> float:
        return M_LEFT + (_log(v) - x_lo) / (x_hi - x_lo) * pw

    series = []
    for name, h, color in data:
        n = H.total(h)
        bars = []
        for b, c in sorted(h.items()):
            left, right = H.bucket_span(b)
            span = max(_log(right) - _log(left), 1e-9)
            bars.append((b, c, left, right, c / n / span))
        series.append((name, color, n, bars))
    y_max = max(d for _, _, _, bars in series for *_, d in bars) * 1.08

    def sy(d: float) -> float:
        return M_TOP + ph - d / y_max * ph

    parts.append(_axes_log_x(sx, x_lo, x_hi, pw, ph, "latency (ms, log scale)", "share of requests (density)"))
    for name, color, n, bars in series:
        pts = []
        prev_right = None
        for _b, _c, left, right, d in bars:
            if prev_right is None or left > prev_right + 1e-9:
                if prev_right is not None:
                    pts.append((sx(prev_right), sy(0)))
                pts.append((sx(left), sy(0)))
            pts += [(sx(left), sy(d)), (sx(right), sy(d))]
            prev_right = right
        pts.append((sx(prev_right or 0.0), sy(0)))
        path = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
        parts.append(
            f'<polygon class="series" points="{path}" fill="{color}" fill-opacity="0.28" stroke="{color}" '
            f'stroke-width="1.2"><title>{escape(name)}: {n} samples</title></polygon>'
        )
        for b, c, left, right, d in bars:  # invisible hover targets with exact counts
            parts.append(
                f'<rect x="{_f(sx(left))}" y="{_f(sy(d))}" width="{_f(max(sx(right) - sx(left), 0.5))}" '
                f'height="{_f(sy(0) - sy(d))}" fill="transparent"><title>{escape(name)}: {b} ms bucket, {c} '
                f"({c / n:.2%})</title></rect>"
            )
    for label, value, color in markers:
        x = sx(value)
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{M_TOP}" y2="{M_TOP + ph}" stroke="{color}" stroke-dasharray="4 3">'
            f"<title>{escape(label)} = {value:g} ms</title></line>"
        )
    parts.append(_legend([(n, c) for n, c, *_ in series]))
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _axes_log_x(
    sx: Callable[[float], float], x_lo: float, x_hi: float, pw: float, ph: float, x_label: str, y_label: str
) -> str:
    out = [
        f'<line x1="{M_LEFT}" x2="{M_LEFT + pw}" y1="{M_TOP + ph}" y2="{M_TOP + ph}" stroke="#333"/>',
        f'<line x1="{M_LEFT}" x2="{M_LEFT}" y1="{M_TOP}" y2="{M_TOP + ph}" stroke="#333"/>',
    ]
    ticks = [t for t in LOG_TICKS if x_lo - 1e-9 <= _log(t) <= x_hi + 1e-9]
    if len(ticks) < 2:
        lo_v, hi_v = 10**x_lo - 1, 10**x_hi - 1
        ticks = [t for t in nice_ticks(lo_v, hi_v, 4) if lo_v <= t <= hi_v]
    for t in ticks:
        x = sx(t)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{M_TOP + ph}" y2="{M_TOP + ph + 4}" stroke="#333"/>')
        out.append(f'<text x="{_f(x)}" y="{M_TOP + ph + 16}" text-anchor="middle">{_f(t)}</text>')
    out.append(f'<text x="{M_LEFT + pw / 2}" y="{HGT - 8}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text x="14" y="{M_TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {M_TOP + ph / 2})">'
        f"{escape(y_label)}</text>"
    )
    return "\n".join(out)


def _y_axis(ticks: Sequence[float], sy: Callable[[float], float], pw: float, ph: float, unit: str) -> str:
    """The value axis of bar and line charts: the baseline, a gridline and label per tick, the unit."""
    out = [f'<line x1="{M_LEFT}" x2="{M_LEFT + pw}" y1="{M_TOP + ph}" y2="{M_TOP + ph}" stroke="#333"/>']
    for t in ticks:
        y = sy(t)
        out.append(f'<line x1="{M_LEFT}" x2="{M_LEFT + pw}" y1="{_f(y)}" y2="{_f(y)}" stroke="#ddd"/>')
        out.append(f'<text x="{M_LEFT - 4}" y="{_f(y + 4)}" text-anchor="end">{escape(fmt_value(t))}</text>')
    if unit:
        out.append(f'<text x="4" y="{M_TOP - 6}">{escape(unit)}</text>')
    return "\n".join(out)


def _legend(items: Sequence[tuple[str, str]], width: int = W) -> str:
    """A one-row legend in the top margin, right-aligned (never over the data)."""
    out, sizes = [], [16 + 6.2 * len(name) for name, _ in items]
    x = width - M_RIGHT - sum(sizes) - 10 * (len(items) - 1)
    for (name, color), size in zip(items, sizes, strict=True):
        out.append(f'<rect x="{_f(x)}" y="7" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{_f(x + 14)}" y="16">{escape(name)}</text>')
        x += size + 10
    return "\n".join(out)


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    unit: str = "",
    errors: Sequence[Sequence[tuple[float, float] | None]] | None = None,
) -> Markup:
    """Grouped bars: one group per label, one bar per series; optional (lo, hi) whiskers per bar."""
    parts = _open(title)
    pw, ph = W - M_LEFT - M_RIGHT, HGT - M_TOP - M_BOTTOM
    values = [v for _, _, vals in series for v in vals if v is not None]
    tops = values + [hi for errs in (errors or []) for e in errs if e for hi in (e[1],)]
    y_hi = max(tops) if tops else 1.0
    y_hi = y_hi if y_hi > 0 else 1.0
    ticks = nice_ticks(0.0, y_hi * 1.05)
    y_top = ticks[-1]

    def sy(v: float) -> float:
        return M_TOP + ph - max(v, 0.0) / y_top * ph

    parts.append(_y_axis(ticks, sy, pw, ph, unit))
    ng, ns = max(len(groups), 1), max(len(series), 1)
    gw = pw / ng
    bw = gw * 0.8 / ns
    for gi, group in enumerate(groups):
        gx = M_LEFT + gi * gw + gw * 0.1
        parts.append(
            f'<text x="{_f(M_LEFT + gi * gw + gw / 2)}" y="{M_TOP + ph + 16}" text-anchor="middle">'
            f"{escape(_clip(group, int(gw / 6.5)))}<title>{escape(group)}</title></text>"
        )
        for si, (name, color, vals) in enumerate(series):
            v = vals[gi] if gi < len(vals) else None
            if v is None:
                continue
            x = gx + si * bw
            y = sy(v)
            parts.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(y)}" width="{_f(bw * 0.92)}" height="{_f(M_TOP + ph - y)}" '
                f'fill="{color}"><title>{escape(group)} / {escape(name)}: {escape(fmt_value(v, unit))}</title></rect>'
            )
            err = errors[si][gi] if errors and si < len(errors) and gi < len(errors[si]) else None
            if err and all(math.isfinite(e) for e in err):
                cx = x + bw * 0.46
                y1, y2 = sy(err[0]), sy(err[1])
                parts.append(
                    f'<path d="M{_f(cx - 3)},{_f(y1)}H{_f(cx + 3)}M{_f(cx)},{_f(y1)}V{_f(y2)}M{_f(cx - 3)},{_f(y2)}'
                    f'H{_f(cx + 3)}" stroke="#222" fill="none"><title>interval {err[0]:g} .. {err[1]:g}</title></path>'
                )
    parts.append(_legend([(name, color) for name, color, _ in series]))
    parts.append("</svg>")
    return Markup("\n".join(parts))


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    unit: str = "",
    *,
    max_labels: int = 0,
) -> Markup:
    """One line per series over categorical x (runs in order, or a run's intervals); gaps where a value is missing.

    ``max_labels``: past that many points only every k-th x label is written and the points carry no
    dots (a run's 360 intervals stay legible); 0: every label, every dot.
    """
    every = max(1, -(-len(x_labels) // max_labels)) if max_labels and len(x_labels) > max_labels else 1
    height = HGT + 40
    parts = _open(title, height=height)
    bottom = M_BOTTOM + 40
    pw, ph = W - M_LEFT - M_RIGHT - 150, height - M_TOP - bottom
    values = [v for _, _, vals in series for v in vals if v is not None and math.isfinite(v)]
    lo = min(values + [0.0])
    hi = max(values) if values else 1.0
    ticks = nice_ticks(lo, hi * 1.05 if hi > 0 else 1.0)
    y_lo, y_hi = ticks[0], ticks[-1]

    def sy(v: float) -> float:
        return M_TOP + ph - (v - y_lo) / ((y_hi - y_lo) or 1.0) * ph

    n = len(x_labels)

    inset = 60.0  # room for the first rotated label

    def sx(i: int) -> float:
        return M_LEFT + (pw / 2 if n == 1 else inset + i * (pw - inset) / (n - 1))

    parts.append(_y_axis(ticks, sy, pw, ph, unit))
    for i, label in enumerate(x_labels):
        if i % every:
            continue
        x = sx(i)
        y = M_TOP + ph + 12
        parts.append(
            f'<text x="{_f(x)}" y="{y}" text-anchor="end" transform="rotate(-35 {_f(x)} {y})">'
            f"{escape(_clip(label, 18))}<title>{escape(label)}</title></text>"
        )
    for name, color, vals in series:
        segs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(vals):
            if v is None or not math.isfinite(v):
                segs.append([])
                continue
            segs[-1].append((sx(i), sy(v)))
        for seg in segs:
            if len(seg) > 1:
                pts = " ".join(f"{_f(x)},{_f(y)}" for x, y in seg)
                parts.append(f'<polyline class="series" points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(vals):
            if v is None or not math.isfinite(v) or every > 1:
                continue
            parts.append(
                f'<circle cx="{_f(sx(i))}" cy="{_f(sy(v))}" r="3.5" fill="{color}"><title>{escape(x_labels[i])} / '
                f"{escape(name)}: {escape(fmt_value(v, unit))}</title></circle>"
            )
    for i, (name, color, _) in enumerate(series):  # legend down the right side: many series fit
        y = M_TOP + 4 + i * 15
        parts.append(f'<rect x="{_f(M_LEFT + pw + 14)}" y="{y}" width="10" height="10" fill="{color}"/>')
        parts.append(
            f'<text x="{_f(M_LEFT + pw + 28)}" y="{y + 9}">{escape(_clip(name, 20))}<title>{escape(name)}'
            f"</title></text>"
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _clip(text: str, width: int) -> str:
    width = max(width, 4)
    return text if len(text) <= width else text[: width - 1] + "\u2026"
