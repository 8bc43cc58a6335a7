"""The load generator's health over the whole run, and the verdict every report carries.

:mod:`harness.user.loadgen` watches each process live (its latest CPU, loop lag, RSS, open files);
this module keeps what a report needs once the run is over: per process, a histogram of the
loop's lateness (for its mean, p99 and max), CPU and memory peaks, and the periods the process
was saturated, with why. Workers send theirs to the master with their snapshots; the master
merges them (:func:`section`) into ``summary.json``'s ``load_generator`` section, whose verdict
is ``trustworthy`` or ``saturated``: a run whose generator was saturated measured its own
queueing as well as the target, and says so, and when.

Pure: no Locust, no clock of its own (callers pass the times), plain JSON types throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from harness.reports import histogram as H

TRUSTWORTHY: Final = "trustworthy"
SATURATED: Final = "saturated"
MAX_PERIODS: Final = 100  # per process; beyond it the two closest periods merge
MAX_SAMPLES: Final = 360  # the run over time: beyond it neighbouring samples merge (the interval doubles)
MAX_REASONS: Final = 3  # kept per period


def lag_bucket(ms: float) -> int:
    """Log-linear buckets (1 ms to 100, 10 ms to 1 s, 100 ms to 10 s, 1 s beyond): bounded, like Locust's own."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return round(ms, -1)
    if ms < 10000:
        return round(ms, -2)
    return round(ms, -3)


@dataclass
class RunHealth:
    """One process's health since the test started."""

    started_at: float = 0.0
    lag_hist: dict[int, int] = field(default_factory=dict)
    lag_sum_ms: float = 0.0
    lag_max_ms: float = 0.0
    cpu_sum: float = 0.0
    cpu_samples: int = 0
    cpu_max: float = 0.0
    busy_sum: float = 0.0
    busy_samples: int = 0
    busy_max: float = 0.0
    rss_max: int = 0
    fds_max: int | None = None
    periods: list[list[Any]] = field(default_factory=list)  # [from_ts, to_ts, [reasons]]

    def record_lag(self, lag_ms: float) -> None:
        key = lag_bucket(lag_ms)
        self.lag_hist[key] = self.lag_hist.get(key, 0) + 1
        self.lag_sum_ms += lag_ms
        self.lag_max_ms = max(self.lag_max_ms, lag_ms)

    def record_busy(self, busy_percent: float) -> None:
        self.busy_sum += busy_percent
        self.busy_samples += 1
        self.busy_max = max(self.busy_max, busy_percent)

    def record_sample(
        self, now: float, interval_s: float, cpu: float | None, rss: int, fds: int | None, reasons: list[str] | None
    ) -> None:
        """A CPU/RSS/fds sample; ``reasons`` when the process was saturated over the last ``interval_s``."""
        if cpu is not None:
            self.cpu_sum += cpu
            self.cpu_samples += 1
            self.cpu_max = max(self.cpu_max, cpu)
        self.rss_max = max(self.rss_max, rss)
        if fds is not None:
            self.fds_max = max(self.fds_max or 0, fds)
        if not reasons:
            return
        last = self.periods[-1] if self.periods else None
        if last is not None and last[1] >= now - interval_s - 0.5:  # the same period goes on
            last[1] = now
            last[2] = _distinct(last[2] + reasons)
        else:
            self.periods.append([max(self.started_at, now - interval_s), now, _distinct(reasons)])
            if len(self.periods) > MAX_PERIODS:
                gaps = [self.periods[i + 1][0] - self.periods[i][1] for i in range(len(self.periods) - 1)]
                i = gaps.index(min(gaps))
                a, b = self.periods[i], self.periods.pop(i + 1)
                a[1], a[2] = b[1], _distinct(a[2] + b[2])

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "lag_hist": {str(k): v for k, v in sorted(self.lag_hist.items())},
            "lag_sum_ms": round(self.lag_sum_ms, 3),
            "lag_max_ms": round(self.lag_max_ms, 2),
            "cpu_mean": round(self.cpu_sum / self.cpu_samples, 1) if self.cpu_samples else None,
            "cpu_max": round(self.cpu_max, 1),
            "busy_mean": round(self.busy_sum / self.busy_samples, 1) if self.busy_samples else None,
            "busy_max": round(self.busy_max, 1),
            "rss_max": self.rss_max,
            "fds_max": self.fds_max,
            "periods": [[round(a, 3), round(b, 3), list(r)] for a, b, r in self.periods],
        }


def _distinct(reasons: list[str]) -> list[str]:
    kinds: dict[str, str] = {}
    for reason in reasons:  # one per kind ("CPU", "event loop"), the latest wording
        kinds[reason.split(" ", 1)[0]] = reason
    return list(kinds.values())[:MAX_REASONS]


def add_sample(samples: list[dict[str, Any]], sample: dict[str, Any]) -> None:
    """Append; past :data:`MAX_SAMPLES` neighbours merge (worst lag and CPU kept, saturated if either)."""
    samples.append(sample)
    if len(samples) <= MAX_SAMPLES:
        return
    merged = []
    for a, b in zip(samples[0::2], samples[1::2], strict=False):
        merged.append(
            {
                "t_s": b["t_s"],
                "cpu_percent": max(a["cpu_percent"], b["cpu_percent"]),
                "loop_lag_ms": max(a["loop_lag_ms"], b["loop_lag_ms"]),
                "loop_lag_max_ms": max(a["loop_lag_max_ms"], b["loop_lag_max_ms"]),
                "loop_busy_percent": max(a.get("loop_busy_percent") or 0.0, b.get("loop_busy_percent") or 0.0),
                "rss_bytes": max(a["rss_bytes"], b["rss_bytes"]),
                "fds": b["fds"],
                "saturated": a["saturated"] or b["saturated"],
            }
        )
    if len(samples) % 2:
        merged.append(samples[-1])
    samples[:] = merged


def _process_row(part: dict[str, Any], started: float, ended: float) -> dict[str, Any]:
    health = part.get("run") or {}
    pauses = health.get("gc") or {}
    hist = H.normalize(health.get("lag_hist") or {})
    n = H.total(hist)
    periods = _clip(health.get("periods") or [], started, ended)
    return {
        "id": part.get("id") or part.get("role"),
        "role": part.get("role"),
        "host": part.get("host"),
        "pid": part.get("pid"),
        "cpu_percent_mean": health.get("cpu_mean"),
        "cpu_percent_max": health.get("cpu_max"),
        "loop_busy_percent_mean": health.get("busy_mean"),
        "loop_busy_percent_max": health.get("busy_max"),
        "loop_lag_mean_ms": round(health.get("lag_sum_ms", 0.0) / n, 2) if n else None,
        "loop_lag_p99_ms": float(H.percentile(hist, n, 0.99)) if n else None,
        "loop_lag_max_ms": health.get("lag_max_ms") if n else None,
        "rss_max_bytes": health.get("rss_max"),
        "fds_max": health.get("fds_max"),
        "fd_limit": part.get("fd_limit"),
        "gc_full_collections": pauses.get("full_collections"),
        "gc_pause_total_ms": pauses.get("pause_total_ms"),
        "gc_pause_max_ms": pauses.get("pause_max_ms"),
        "saturated_s": round(sum(b - a for a, b, _ in periods), 1),
        "_periods": periods,
    }


def _worst(rows: list[dict[str, Any]], key: str) -> Any:
    """The worst process's figure (each loop pauses on its own), None where no process had one."""
    return max((r[key] for r in rows if r.get(key) is not None), default=None)


def _clip(periods: list[list[Any]], started: float, ended: float) -> list[list[Any]]:
    out = []
    for a, b, reasons in periods:
        a, b = max(a, started), min(b, ended)
        if b > a:
            out.append([a, b, reasons])
    return out


def section(
    parts: list[dict[str, Any]],
    started: float,
    ended: float,
    samples: list[dict[str, Any]],
    sample_interval_s: float,
    limits: dict[str, float],
) -> dict[str, Any]:
    """``summary.json``'s ``load_generator``: per process and total, over time, and the verdict.

    ``parts``: each process's snapshot with its ``run`` health (:meth:`RunHealth.to_dict`).
    The share saturated is the union of every process's saturated periods over the run's length.
    """
    rows = [_process_row(p, started, ended) for p in parts]
    spans: list[tuple[float, float, str, list[str]]] = sorted(
        (a, b, str(r["id"]), reasons) for r in rows for a, b, reasons in r.pop("_periods")
    )
    union: list[dict[str, Any]] = []
    for a, b, who, reasons in spans:
        if union and a <= union[-1]["_to"]:
            last = union[-1]
            last["_to"] = max(last["_to"], b)
            last["processes"] = sorted({*last["processes"], who})
            last["reasons"] = sorted({*last["reasons"], *(f"{who}: {r}" for r in reasons)})[: 2 * MAX_REASONS]
        else:
            union.append({"_from": a, "_to": b, "processes": [who], "reasons": [f"{who}: {r}" for r in reasons]})
    duration = max(0.0, ended - started)
    saturated_s = sum(p["_to"] - p["_from"] for p in union)
    periods = [
        {"from_s": round(p.pop("_from") - started, 1), "to_s": round(p.pop("_to") - started, 1), **p} for p in union
    ]
    reasons = sorted({r for p in periods for r in p["reasons"]})
    lags = [r for r in rows if r["loop_lag_p99_ms"] is not None]
    total = {
        "processes": len(rows),
        "cpu_percent_max": round(sum(r["cpu_percent_max"] or 0.0 for r in rows), 1),
        "loop_busy_percent_max": max((r["loop_busy_percent_max"] or 0.0 for r in rows), default=None),
        "loop_lag_mean_ms": max((r["loop_lag_mean_ms"] for r in lags), default=None),
        "loop_lag_p99_ms": max((r["loop_lag_p99_ms"] for r in lags), default=None),
        "loop_lag_max_ms": max((r["loop_lag_max_ms"] for r in lags), default=None),
        "rss_max_bytes": sum(r["rss_max_bytes"] or 0 for r in rows),
        "fds_max": sum(r["fds_max"] or 0 for r in rows),
        "gc_full_collections": _worst(rows, "gc_full_collections"),
        "gc_pause_total_ms": _worst(rows, "gc_pause_total_ms"),
        "gc_pause_max_ms": _worst(rows, "gc_pause_max_ms"),
    }
    return {
        "verdict": SATURATED if periods else TRUSTWORTHY,
        "reasons": reasons[:10],
        "saturated_s": round(saturated_s, 1),
        "saturated_share": round(saturated_s / duration, 4) if duration else 0.0,
        "saturated_periods": periods[:MAX_PERIODS],
        "processes": rows,
        "total": total,
        "samples": samples,
        "sample_interval_s": sample_interval_s,
        "limits": limits,
    }

