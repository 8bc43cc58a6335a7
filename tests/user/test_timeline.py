"""The run over time (``summary.json``'s ``timeline``): rows that add up to the run, bounded in size.

A real run with faults on, one row a second: every step's and phase's counts over the rows equal
the summary's totals, the sockets' and pings' too, and report.html charts them. The merging that
keeps an 8-hour run bounded, on made-up totals.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import jsonschema

from harness.reports import histogram as H
from harness.reports.loading import load_schema
from harness.user.timeline import MAX_ROWS, Timeline
from tests.user.runs import QUICK, run_locust


def _total(rows: list[dict], *path: str) -> Counter:
    out: Counter = Counter()
    for row in rows:
        part = row
        for key in path:
            part = part.get(key, {})
        out.update(part)
    return out


def test_the_rows_add_up_to_the_run(emulator, tmp_path: Path) -> None:
    emu = emulator("--fault", "connect=status:503,p=0.3", "--fault", "hold=close:4401,after=0.3,p=0.3")
    run = run_locust([*QUICK, "-t", "4s", "--lp-timeline-interval", "1"], tmp_path, target=emu.url)
    summary = run.summary
    jsonschema.validate(summary, load_schema())
    rows = summary["timeline"]["rows"]
    assert summary["timeline"]["interval_s"] == 1.0 and len(rows) >= 4, rows
    assert [r["t_s"] for r in rows] == sorted(r["t_s"] for r in rows) and rows[-1]["t_s"] <= summary["run"]["duration_s"] + 1
    for name, step in summary["steps"].items():
        assert sum(r["steps"].get(name, {}).get("count", 0) for r in rows) == step["count"], name
        assert sum(r["steps"].get(name, {}).get("failures", 0) for r in rows) == step["failures"], name
    for name, phase in summary["phases"].items():
        assert _total(rows, "phases", name) == Counter(phase["categories"]), name
    assert sum(phase["failures"] for phase in summary["phases"].values()) > 0  # the faults showed
    sockets = summary["sockets"]
    assert sum(r["sockets"].get("opened", 0) for r in rows) == sockets["opened"]
    assert _total(rows, "sockets", "server_closes") == Counter(sockets["server_closes"])
    assert _total(rows, "pings") == Counter({k: v for k, v in summary["pings"].items() if v})
    assert rows[-1]["sockets"]["open"] == sockets["open"] and max(r["users"] for r in rows) == 3
    assert all("cpu_percent" in r["load_generator"] for r in rows)
    page = (run.run_folder / "report.html").read_text()
    assert "Over time" in page and "p95 latency over time" in page and "open sockets and users" in page


def _totals(n: int) -> dict:
    """Cumulative totals after n ticks: one request a tick taking n ms, a failure every 3rd."""
    hist = Counter({k: 1 for k in range(1, n + 1)})
    return {
        "users": 5,
        "steps": {"connect": {"count": n, "failures": n // 3, "hist": dict(hist)}},
        "phases": {"socket": {"timeout": n // 3}},
        "sockets": {"open": 5, "opened": n, "drops": 0, "server_closes": {}},
        "pings": {"sent": 2 * n, "answered": 2 * n, "timeouts": 0},
        "messages": {"sent": 0, "replied": 0, "lost": 0},
    }


def test_an_hours_long_run_stays_bounded_and_exact() -> None:
    ticks = 8 * 360  # 8 hours at 10 s
    timeline = Timeline(10.0, lambda: (0.0, _totals(0), {}))
    for n in range(1, ticks + 1):
        timeline.tick(10.0 * n, _totals(n), {"cpu_percent": float(n % 50), "saturated": n == 7})
    section = timeline.section(live=False)
    rows = section["rows"]
    assert len(rows) <= MAX_ROWS and rows[-1]["t_s"] == 10.0 * ticks
    assert sum(r["interval_s"] for r in rows) == 10.0 * ticks  # no time lost in the merges
    assert sum(r["steps"]["connect"]["count"] for r in rows) == ticks
    assert sum(r["steps"]["connect"]["failures"] for r in rows) == ticks // 3
    assert sum(r["phases"]["socket"].get("timeout", 0) for r in rows) == ticks // 3
    assert sum(r["load_generator"]["saturated"] for r in rows) == 1 and rows[0]["load_generator"]["cpu_percent"] > 0
    # each merged row's percentiles are those of its own requests (here: the ticks it covers, in ms)
    first = rows[0]
    covered = int(first["interval_s"] / 10.0)
    own = H.normalize({str(k): 1 for k in range(1, covered + 1)})
    assert first["steps"]["connect"]["p95_ms"] == H.percentile(own, covered, 0.95)
