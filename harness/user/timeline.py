"""The run over time: every interval, what changed since the last, for ``summary.json``'s ``timeline``.

A soak is a story over hours (a latency that doubles in hour six, drops that come in bursts), which
end-of-run totals cannot tell. On the coordinator (the master, or the only process) a greenlet reads
the run's cumulative numbers every ``--lp-timeline-interval`` seconds -- Locust's stats entries
(already merged from the workers, so nothing is counted twice), the harness metrics, the load
generator's total -- and keeps the difference as one row: per step the count, failures and the
percentiles of that interval's own latency histogram; per phase the failures by category; open
sockets (a level) and what opened, dropped or was closed by the server; pings and messages.

Bounded: past :data:`MAX_ROWS` neighbouring rows merge (counts add, histograms merge, percentiles
are computed again), so an 8-hour run at 10 s keeps at most 360 rows of ever longer intervals.
The rows' counts add up to the summary's totals exactly, which the tests check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import gevent
from locust.env import Environment

from harness.reports import histogram as H
from harness.user.steps import STEP_ORDER, STEP_PHASES

MAX_ROWS: Final = 360
QUANTILES: Final = (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99))
DELTAS: Final = {"pings": ("sent", "answered", "timeouts"), "messages": ("sent", "replied", "lost")}


def cumulative(environment: Environment, metrics: dict[str, Any], users: int) -> dict[str, Any]:
    """The run's totals now: what each row is the difference of."""
    entries = environment.runner.stats.entries
    steps = {}
    for name in STEP_ORDER:
        entry = entries.get((name, STEP_PHASES[name]))
        if entry is not None:
            steps[name] = {
                "count": entry.num_requests,
                "failures": entry.num_failures,
                "hist": dict(entry.response_times),
            }
    sockets = metrics.get("sockets") or {}
    return {
        "users": users,
        "steps": steps,
        "phases": {n: dict(p.get("categories") or {}) for n, p in (metrics.get("phases") or {}).items()},
        "sockets": {k: sockets.get(k, 0) for k in ("open", "opened", "drops")}
        | {"server_closes": dict(sockets.get("server_closes") or {})},
        **{group: {k: (metrics.get(group) or {}).get(k, 0) for k in keys} for group, keys in DELTAS.items()},
    }


def _minus(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    out = {k: v - before.get(k, 0) for k, v in now.items()}
    if any(v < 0 for v in out.values()):  # the stats were reset in between (the web UI's button)
        return dict(now)
    return {k: v for k, v in out.items() if v}


Reader = Callable[[], tuple[float, dict[str, Any], dict[str, Any]]]  # (t_s, cumulative, generator) now


class Timeline:
    """The rows so far; :meth:`tick` adds one, :meth:`section` is what ``summary.json`` gets."""

    def __init__(self, interval_s: float, read: Reader) -> None:
        self.interval_s = interval_s
        self.read = read
        self.rows: list[dict[str, Any]] = []
        _, self._last, _ = read()
        self._t = 0.0

    def tick(self, t_s: float, now: dict[str, Any], generator: dict[str, Any] | None) -> None:
        """One row: ``now`` (:func:`cumulative`) minus the last, ending ``t_s`` seconds into the run."""
        self.rows.append(self._row(t_s, now, generator))
        self._last, self._t = now, t_s
        if len(self.rows) > MAX_ROWS:
            self.rows = [_merge(a, b) for a, b in zip(self.rows[0::2], self.rows[1::2], strict=False)] + (
                [self.rows[-1]] if len(self.rows) % 2 else []
            )

    def section(self, *, live: bool = True) -> dict[str, Any]:
        """The rows, and (``live``) one more up to now: a summary written between ticks misses nothing."""
        rows = self.rows
        if live:
            t_s, now, generator = self.read()
            if t_s > self._t:  # even a moment later: a request may have ended since the tick
                rows = [*rows, self._row(t_s, now, generator)]
        return {"interval_s": self.interval_s, "rows": [_public(r) for r in rows]}

    def _row(self, t_s: float, now: dict[str, Any], generator: dict[str, Any] | None) -> dict[str, Any]:
        last, steps = self._last, {}
        for name, step in now["steps"].items():
            before = last["steps"].get(name, {"count": 0, "failures": 0, "hist": {}})
            hist = _minus(step["hist"], before["hist"])
            count = step["count"] - before["count"]
            failures = step["failures"] - before["failures"]
            if count < 0 or failures < 0:  # reset: the interval is what there is now
                count, failures, hist = step["count"], step["failures"], dict(step["hist"])
            if count or failures:
                steps[name] = {"count": count, "failures": failures, "_hist": hist}
        return {
            "t_s": round(t_s, 1),
            "interval_s": round(t_s - self._t, 1),
            "users": now["users"],
            "steps": steps,
            "phases": {n: _minus(c, last["phases"].get(n, {})) for n, c in now["phases"].items()},
            "sockets": {"open": now["sockets"]["open"]}
            | _minus({k: now["sockets"][k] for k in ("opened", "drops")}, last["sockets"])
            | {"server_closes": _minus(now["sockets"]["server_closes"], last["sockets"]["server_closes"])},
            **{group: _minus(now[group], last[group]) for group in DELTAS},
            "load_generator": generator or {},
        }


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return dict(Counter(a) + Counter(b))


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two neighbouring rows as one: counts add, the later level stands, the worst health stays."""
    steps = dict(a["steps"])
    for name, s in b["steps"].items():
        if name in steps:
            t = steps[name]
            s = {"count": t["count"] + s["count"], "failures": t["failures"] + s["failures"],
                 "_hist": _add(t["_hist"], s["_hist"])}  # fmt: skip
        steps[name] = s
    ga, gb = a["load_generator"], b["load_generator"]
    return {
        "t_s": b["t_s"],
        "interval_s": round(a["interval_s"] + b["interval_s"], 1),
        "users": b["users"],
        "steps": steps,
        "phases": {n: _add(a["phases"].get(n, {}), b["phases"].get(n, {})) for n in {*a["phases"], *b["phases"]}},
        "sockets": {"open": b["sockets"]["open"]}
        | _add({k: v for k, v in a["sockets"].items() if k not in ("open", "server_closes")},
               {k: v for k, v in b["sockets"].items() if k not in ("open", "server_closes")})
        | {"server_closes": _add(a["sockets"]["server_closes"], b["sockets"]["server_closes"])},
        **{group: _add(a[group], b[group]) for group in DELTAS},
        "load_generator": {k: max(ga.get(k, 0), gb.get(k, 0)) for k in {*ga, *gb}},
    }  # fmt: skip


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A row as written: each step's percentiles from its interval's histogram, the histogram not kept."""
    steps = {}
    for name, s in row["steps"].items():
        hist = H.normalize(s["_hist"])
        n = H.total(hist)
        steps[name] = {"count": s["count"], "failures": s["failures"]} | {
            key: (float(H.percentile(hist, n, q)) if n else None) for key, q in QUANTILES
        }
    return {**row, "steps": steps}


# ---------------------------------------------------------------------------- on the coordinator
def start(environment: Environment, interval_s: float, read: Reader) -> Timeline:
    """A timeline ticking every ``interval_s``; ``read()`` gives (t_s, cumulative, generator) now."""
    timeline = Timeline(interval_s, read)

    def run() -> None:
        while True:
            gevent.sleep(interval_s)
            timeline.tick(*read())

    environment.lp_timeline_greenlet = gevent.spawn(run)
    environment.lp_timeline = timeline
    return timeline


def timeline_of(environment: Environment) -> Timeline | None:
    """This run's timeline (None on a worker, or before the first test started)."""
    return getattr(environment, "lp_timeline", None)


def stop(environment: Environment) -> None:
    """No more ticks (the summary's live row covers the rest of the run)."""
    greenlet = getattr(environment, "lp_timeline_greenlet", None)
    if greenlet is not None:
        greenlet.kill(block=False)
        environment.lp_timeline_greenlet = None
