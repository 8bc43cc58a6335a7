"""What the "LP harness" tab shows: one structured view of a run, and the table rows made from it.

:func:`build_view` gathers the numbers from the live environment (the harness metrics merged
over workers, Locust's own ``ping`` stats entry, the load generators' health, and the load
shape's progress: the breakpoint's steps, the arrival pacer's counts, as summary.json has them);
:func:`table_rows` turns a view into the rows of Locust's extended table. Keeping the two apart
lets the JSON endpoint, the table and the tests share one source of truth.
"""

from __future__ import annotations

import time
from typing import Any, Final

from locust.runners import MasterRunner

from harness.reports.loadshape import asked_rate, breakpoint_verdict, broken_text, rate_num, step_status
from harness.reports.percentiles import LABELLED
from harness.user import arrival, breakpoint, loadgen
from harness.user.state import merged_metrics, state_of
from harness.user.steps import STEP_PHASES, Step
from harness.user.workers import describe

TAB_KEY: Final = "lp-harness"
TAB_TITLE: Final = "LP harness"
COLUMNS: Final = (("group", "Group"), ("measure", "Measure"), ("value", "Value"), ("detail", "Detail"))
# Up to p99 only: the tab's rows and JSON keys (p50_ms ... p99_ms) stay what scripts and the docs know,
# and a p99.9 of the few thousand pings a refresh sees rests on a handful of them.
RTT_PERCENTILES: Final = tuple((name, q) for name, q in LABELLED if q <= 0.99)
REFRESH_S: Final = 2.0  # Locust's UI polls /stats/requests (and so this tab) every 2 s while running


def ping_rtt(environment: Any) -> dict[str, Any]:
    """Ping round-trip percentiles from Locust's own stats entry (name ``ping``, type ``socket``)."""
    stats = getattr(environment.runner, "stats", None)
    entry = stats.entries.get((Step.PING, STEP_PHASES[Step.PING])) if stats is not None else None
    count = entry.num_requests if entry is not None else 0
    data: dict[str, Any] = {"count": count, "failures": entry.num_failures if entry is not None else 0}
    for key, fraction in RTT_PERCENTILES:
        data[f"{key}_ms"] = entry.get_response_time_percentile(fraction) if count else None
    data["max_ms"] = entry.max_response_time if count else None
    data["mean_ms"] = round(entry.avg_response_time, 2) if count else None
    return data


def build_view(environment: Any) -> dict[str, Any]:
    """Everything the tab shows, as JSON-ready data (also served at ``/lp-harness/stats``)."""
    runner = environment.runner
    metrics = merged_metrics(environment) if runner is not None else None
    target_users = int(getattr(runner, "target_user_count", 0) or 0)
    sockets = dict(metrics["sockets"]) if metrics else {}
    sockets["target_users"] = target_users
    return {
        "state": getattr(runner, "state", "missing"),
        "distributed": isinstance(runner, MasterRunner),
        "workers": getattr(runner, "worker_count", 0) if isinstance(runner, MasterRunner) else 0,
        "users": int(getattr(runner, "user_count", 0) or 0),
        "target_users": target_users,
        "phases": metrics["phases"] if metrics else {},
        "sockets": sockets,
        "pings": {**(metrics["pings"] if metrics else {}), "rtt": ping_rtt(environment)},
        "loadgen": loadgen.merged(environment),
        "generator": _run_verdict(environment),
        "conversations": (metrics or {}).get("conversations", {}),
        "reconnect": (metrics or {}).get("reconnect", {}),
        "messages": (metrics or {}).get("messages", {}),
        "lost_workers": list(state_of(environment).lost_workers.values()),
        "breakpoint": breakpoint.live_section(environment),  # None unless this test's shape is a breakpoint
        "arrival": arrival.section_of(environment),  # None in the closed model
        "refresh_s": REFRESH_S,
    }


def _run_verdict(environment: Any) -> dict[str, Any] | None:
    """The run so far's load generator verdict (the report's), or None before a test started."""
    started = state_of(environment).started_at
    if not started:
        return None
    section = loadgen.summary_section(environment, started, state_of(environment).ended_at or time.time())
    if section is None:
        return None
    keys = ("verdict", "saturated_share", "saturated_s", "saturated_periods", "reasons")
    return {k: section[k] for k in keys}


# ---------------------------------------------------------------------------- table rows
def _row(group: str, measure: str, value: Any, detail: str = "") -> dict[str, Any]:
    return {"group": group, "measure": measure, "value": value, "detail": detail}


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _num(value: float | None) -> float | str:
    return "-" if value is None else round(value, 1)


def _mb(value: int | None) -> str:
    return "-" if not value else f"{value / (1024 * 1024):.0f} MB"


def _categories(categories: dict[str, int]) -> str:
    return ", ".join(f"{name} ×{count}" for name, count in categories.items()) or "none"


def _process_detail(p: dict[str, Any]) -> str:
    fds = "-" if p.get("fds") is None else f"{p['fds']:,}"
    if p.get("fd_limit"):
        fds += f" of {p['fd_limit']:,}"
    parts = [
        f"RSS {_mb(p.get('rss_bytes'))}",
        f"open files {fds}",
        f"loop lag {_ms(p.get('lag_ms'))} ms avg, {_ms(p.get('lag_max_ms'))} ms max",
        f"loop busy {p.get('loop_busy_percent') or 0:.0f}%",
    ]
    if p.get("host_cpu_percent") is not None and p.get("role") != "total":
        parts.append(f"host CPU {p['host_cpu_percent']:.0f}%")
    if p.get("pid"):
        parts.append(f"pid {p['pid']}")
    if p.get("stale"):
        parts.append("STALE: no report for a while")
    if p.get("saturated"):
        parts.insert(0, "⚠ SATURATED")
    return " · ".join(parts)


def _breakpoint_rows(bp: dict[str, Any]) -> list[dict[str, Any]]:
    """The breakpoint so far: the step running, its users, the steps held and the knee they make."""
    steps = bp.get("steps") or []
    current = next((s for s in steps if s.get("status") == "running"), None)
    planned = bp.get("steps_planned")
    if current is not None:
        step = _row("breakpoint", "step", f"{current['step']} of {planned}",
                    f"since {current['from_s']:.0f} s into the run; {bp.get('step_s'):g} s each")  # fmt: skip
    else:
        step = _row("breakpoint", "step", f"{len(steps)} of {planned}" if steps else "-", breakpoint_verdict(bp))
    last = current or (steps[-1] if steps else None)
    knee = bp.get("knee_users")
    rows = [
        step,
        _row("breakpoint", "users", last["users"] if last else "-", f"of {bp.get('max_users')} at the top step"),
        _row("breakpoint", "held so far", sum(1 for s in steps if s.get("status") == "held"),
             ", ".join(f"{s['users']} {step_status(s)}" for s in steps) or "no step yet"),
        _row("breakpoint", "knee so far", "-" if knee is None else knee,
             "no step has held its whole window yet" if knee is None else f"step {bp.get('knee_step')}: the last that held"),
    ]  # fmt: skip
    if bp.get("broke_at_users") is not None:
        rows.append(_row("breakpoint", "broke at", bp["broke_at_users"], broken_text(bp.get("broken_by"))))
    return rows


def _arrival_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The open model so far: the rate asked against the rate achieved, what was dropped or late."""
    due, dropped = a.get("due") or 0, a.get("dropped") or 0
    kept = "nothing dropped, at most " + _pct(arrival.LATE_TOLERANCE) + " late"
    return [
        _row("arrival", "target rate", asked_rate(a),
             f"{rate_num(a.get('target_rate'))}/s planned over the {a.get('duration_s') or 0:.1f} s so far"),
        _row("arrival", "achieved so far", f"{rate_num(a.get('achieved_rate'))}/s",
             f"{a.get('started') or 0} sessions started of {due} due; at most {a.get('max_concurrent') or 0} "
             f"at once of {a.get('users') or '-'} users"),
        _row("arrival", "dropped", dropped, f"{_pct(dropped / due if due else 0.0)} of the arrivals due: no free user"),
        _row("arrival", "late", a.get("late") or 0,
             f"started over {arrival.LATE_S * 1000:.0f} ms after their time; worst {_ms(a.get('late_max_ms'))} ms"),
        _row("arrival", "status", "kept" if a.get("kept") else "⚠ NOT KEPT", a.get("warning") or kept),
    ]  # fmt: skip


def table_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the tab's table: group, measure, value, detail (text; Locust renders them as-is)."""
    rows: list[dict[str, Any]] = []
    health = view["loadgen"]
    if health["saturated"]:
        rows.append(_row("load generator", "status", "⚠ SATURATED", health["warning"] or ""))
    else:
        rows.append(_row("load generator", "status", "OK", "; ".join(health["notes"]) or "not saturated"))
    generator = view.get("generator")
    if generator:
        periods = ", ".join(f"{p['from_s']:.0f}-{p['to_s']:.0f} s" for p in generator["saturated_periods"][:5])
        verdict = generator["verdict"]
        detail = f"saturated {_pct(generator['saturated_share'])} of the run: {periods}" if periods else "never saturated"
        rows.append(_row("load generator", "this run", verdict, detail))
    rows.append(
        _row(
            "run",
            "state",
            view["state"],
            f"users {view['users']} of {view['target_users']} target"
            + (f" · {view['workers']} workers" if view["distributed"] else ""),
        )
    )
    if view.get("breakpoint"):
        rows.extend(_breakpoint_rows(view["breakpoint"]))
    if view.get("arrival"):
        rows.extend(_arrival_rows(view["arrival"]))
    for name in ("token", "socket"):
        phase = view.get("phases", {}).get(name)
        if phase is None:
            continue
        group = f"{name} phase"
        rows.append(_row(group, "sessions", phase["sessions"], "sessions that started the phase"))
        rows.append(_row(group, "failures", phase["failures"], _categories(phase["categories"])))
        rows.append(_row(group, "fail ratio", _pct(phase["fail_ratio"]), "failures / sessions"))
        if phase.get("interrupted"):
            rows.append(_row(group, "interrupted", phase["interrupted"], "went wrong only after the stop began: not failures"))
        if phase.get("lost"):
            rows.append(_row(group, "lost", phase["lost"], "in flight on a worker that was lost: the report is incomplete"))
    for record in view.get("lost_workers") or ():
        rows.append(_row("run", "lost worker", record["id"], describe(record)))
    s = view.get("sockets", {})
    if "open" in s:
        target = s.get("target_users") or 0
        share = f" ({s['open'] / target:.0%})" if target else ""
        rows.append(_row("sockets", "open", s["open"], f"of {target} target users{share}"))
        rows.append(_row("sockets", "target users", target, "one socket per user while it holds"))
        rows.append(_row("sockets", "peak open", s["peak_open"], "highest open count seen"))
        rows.append(_row("sockets", "opened", s["opened"], "handshakes that succeeded"))
        rows.append(_row("sockets", "drops", s["drops"], "closed without a close frame"))
        rows.append(_row("sockets", "drops per hour", round(s["drops_per_hour"], 2), "since the stats were reset"))
        closes = s.get("server_closes") or {}
        rows.append(_row("sockets", "server closes", sum(closes.values()), _categories(closes)))
    c = view.get("conversations") or {}
    if "opened" in c:
        cleanup = c.get("cleanup") or {}
        calls = cleanup.get("calls") or {}
        rows.append(_row("conversations", "opened", c["opened"], "answered with a conversation id"))
        rows.append(_row("conversations", "closed", c["closed"], f"{c['closed_by_cleanup']} of them by the cleanup"))
        rows.append(_row("conversations", "left open", c["left_open"], _categories(c.get("left_open_reasons") or {})))
        rows.append(
            _row("conversations", "cleanup calls", sum(calls.values()), _categories(calls) + " (not in the steps)")
        )
    r = view.get("reconnect") or {}
    if r.get("drops") or r.get("refreshes"):
        rows.append(_row("reconnects", "drops", r["drops"], "sockets lost mid-hold (--lp-on-drop reconnect)"))
        rows.append(_row("reconnects", "recovered", r["recovered"], "back on their conversation"))
        rows.append(_row("reconnects", "lost", r["lost"], _categories(r.get("failures") or {}) or "no failed try"))
        rows.append(_row("reconnects", "tries", r["reconnects"], "new connections after drops"))
        rows.append(_row("reconnects", "tokens renewed", r.get("refreshes", 0), "mid-hold (--lp-token-refresh)"))
    m = view.get("messages") or {}
    if m.get("sent") or m.get("received") or m.get("lost"):
        receipts = m.get("receipts_sent") or {}
        rows.append(_row("messages", "sent", m["sent"], "ContentEvents published (--lp-messages)"))
        rows.append(_row("messages", "replied", m["replied"], "answered by the agent"))
        rows.append(_row("messages", "lost", m["lost"], "no reply within the reply timeout, or the session failed first"))
        rows.append(_row("messages", "received", m["received"], "the agent's messages"))
        rows.append(_row("messages", "receipts sent", sum(receipts.values()), _categories(receipts)))
        theirs = m.get("receipts_received") or {}
        rows.append(_row("messages", "receipts received", sum(theirs.values()), _categories(theirs)))
        rows.append(_row("messages", "typing", m.get("typing_sent", 0), f"{m.get('typing_received', 0)} from the agent"))
    p = view.get("pings", {})
    if "sent" in p:
        rows.append(_row("pings", "sent", p["sent"], "keepalive ping frames"))
        rows.append(_row("pings", "answered", p["answered"], "pongs received in time"))
        rows.append(_row("pings", "pong timeouts", p["timeouts"], "sessions failed for a missing pong"))
    rtt = p.get("rtt") or {}
    rows.append(_row("ping RTT (ms)", "count", rtt.get("count", 0), "from Locust's 'ping' entry (type socket)"))
    for key, _ in RTT_PERCENTILES:
        rows.append(_row("ping RTT (ms)", key, _num(rtt.get(f"{key}_ms")), ""))
    rows.append(_row("ping RTT (ms)", "max", _num(rtt.get("max_ms")), f"mean {_ms(rtt.get('mean_ms'))}"))
    for proc in health["processes"]:
        label = proc["id"] if proc["role"] != "local" else "this process"
        rows.append(_row("load generator", label, f"CPU {proc['cpu_percent']:.0f}%", _process_detail(proc)))
    if len(health["processes"]) > 1:
        tot = health["total"]
        rows.append(_row("load generator", tot["id"], f"CPU {tot['cpu_percent']:.0f}%", _process_detail(tot)))
    for number, row in enumerate(rows):  # Locust's table sorts by "name" until a header is clicked
        row["name"] = f"{number:03d}"
    return rows
