"""One window of a run as a summary of its own: a later summary minus an earlier one.

A breakpoint test judges each step of users on what happened during that step, not on the run so
far (a cumulative p95 lags a knee by however long the run held before it, and a good first hour
hides a bad minute). The thresholds are pure functions of a summary, so the window is made a
summary: per step the count, failures and the percentiles of the window's own precise histogram
(``histogram_log`` after minus before), per phase the sessions, failures and categories, the
socket, ping and message counters; levels (open sockets) are the window's end. The threshold code
then judges the window exactly as it judges a run. Pure: two summary dicts in, one out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.reports import loghist
from harness.reports.percentiles import MS_KEYS

LEVELS: Final = frozenset({"open", "peak_open", "drops_per_hour", "fail_ratio"})  # not counters: set below
_EMPTY: Final[dict[str, Any]] = {}


def window_summary(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], *, from_s: float, to_s: float, users: int | None
) -> dict[str, Any]:
    """``after`` minus ``before`` (None: the run's start) as a summary of the window ``from_s``..``to_s``.

    ``run.duration_s`` is the window's length and ``run.users`` the window's users, so rules such
    as ``run:sessions_per_s`` or ``sockets:open < 0.9 * users`` read the window. What cannot be
    told from two totals is approximated and said so in docs/shapes.md: a window's min/max latency
    are its histogram's extremes (within 1 %), its peak of open sockets the larger of its ends
    unless the run's peak rose in it, and the load generator's loop lag and CPU are the run's worst
    so far (its saturated share is the window's own).
    """
    before = before or _EMPTY
    duration = max(to_s - from_s, 1e-9)
    steps = {}
    for name, step in (after.get("steps") or {}).items():
        part = _step(step, (before.get("steps") or {}).get(name) or _EMPTY, duration)
        if part is not None:
            steps[name] = part
    phases = {}
    for name, phase in (after.get("phases") or {}).items():
        p = _minus(phase, (before.get("phases") or {}).get(name) or _EMPTY)
        p["fail_ratio"] = p["failures"] / p["sessions"] if p.get("sessions") else 0.0
        phases[name] = p
    sockets_before = before.get("sockets") or _EMPTY
    sockets_after = after.get("sockets") or _EMPTY
    sockets = _minus(sockets_after, sockets_before)
    sockets["open"] = sockets_after.get("open", 0)
    rose = sockets_after.get("peak_open", 0) > sockets_before.get("peak_open", 0)
    ends = max(sockets_before.get("open", 0), sockets_after.get("open", 0))
    sockets["peak_open"] = sockets_after.get("peak_open", 0) if rose else ends
    sockets["drops_per_hour"] = sockets.get("drops", 0) * 3600.0 / duration
    out: dict[str, Any] = {
        **{k: v for k, v in after.items() if k not in ("steps", "phases", "sockets", "thresholds", "timeline")},
        "run": {**(after.get("run") or {}), "duration_s": round(duration, 3), "users": users},
        "steps": steps,
        "phases": phases,
        "sockets": sockets,
        "pings": _minus(after.get("pings") or _EMPTY, before.get("pings") or _EMPTY),
        "thresholds": None,
        "window": {"from_s": round(from_s, 3), "to_s": round(to_s, 3)},
    }
    if after.get("messages") is not None:
        out["messages"] = _minus(after["messages"], before.get("messages") or _EMPTY)
    if after.get("load_generator"):
        out["load_generator"] = _generator(after["load_generator"], from_s, to_s)
    return out


def _step(after: Mapping[str, Any], before: Mapping[str, Any], duration: float) -> dict[str, Any] | None:
    """One step's numbers in the window, or None when it had nothing in it."""
    count = int(after.get("count") or 0) - int(before.get("count") or 0)
    failures = int(after.get("failures") or 0) - int(before.get("failures") or 0)
    if count < 0 or failures < 0:  # the stats were reset in between (the web UI's button): what there is now
        count, failures, before = int(after.get("count") or 0), int(after.get("failures") or 0), _EMPTY
    if not count and not failures:
        return None
    hist = _hist_minus(after.get("histogram_log"), before.get("histogram_log"))
    total_after = (after.get("mean_ms") or 0.0) * (after.get("count") or 0)
    total_before = (before.get("mean_ms") or 0.0) * (before.get("count") or 0)
    step: dict[str, Any] = {
        "phase": after.get("phase"),
        "count": count,
        "failures": failures,
        "fail_ratio": failures / count if count else 0.0,
        "rps": count / duration,
        "mean_ms": (total_after - total_before) / count if count else None,
        "min_ms": loghist.percentile(hist, 0.0) if hist else None,
        "max_ms": loghist.percentile(hist, 1.0) if hist else None,
    }
    for key, q in MS_KEYS:
        step[key] = loghist.percentile(hist, q) if hist else None
    step["histogram_log"] = {str(k): v for k, v in hist.items()}
    return step


def _hist_minus(after: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> dict[int, int]:
    a, b = loghist.normalize(after), loghist.normalize(before)
    out = {k: v - b.get(k, 0) for k, v in a.items()}
    if any(v < 0 for v in out.values()):  # reset in between
        return a
    return {k: v for k, v in out.items() if v > 0}


def _minus(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """Counters minus counters, nested dicts (categories, close codes) too; levels keep ``after``'s value."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, bool) or key in LEVELS:
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = value - (old if isinstance(old, (int, float)) and not isinstance(old, bool) else 0)
        elif isinstance(value, Mapping):
            sub = _minus(value, old if isinstance(old, Mapping) else _EMPTY)
            out[key] = {k: v for k, v in sub.items() if v} if _flat_counts(value) else sub
        else:
            out[key] = value
    return out


def _flat_counts(value: Mapping[str, Any]) -> bool:
    """A dict of counts by name (categories, close codes): its zero entries are dropped."""
    return all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())


def _generator(section: Mapping[str, Any], from_s: float, to_s: float) -> dict[str, Any]:
    """The generator's saturated share within the window; its worst lag and CPU are the run's so far."""
    overlap = 0.0
    for period in section.get("saturated_periods") or []:
        a, b = max(from_s, float(period.get("from_s", 0.0))), min(to_s, float(period.get("to_s", 0.0)))
        overlap += max(0.0, b - a)
    duration = max(to_s - from_s, 1e-9)
    return {**section, "saturated_s": round(overlap, 1), "saturated_share": round(min(1.0, overlap / duration), 4)}
