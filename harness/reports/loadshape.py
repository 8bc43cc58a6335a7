"""The terminal's lines about a run's load shape: the breakpoint's knee and the open model's arrival rate.

Pure, from ``summary.json``'s ``breakpoint`` and ``arrival`` sections (docs/shapes.md), so
``summary.txt`` and the end of a headless run say what the shape found, and a rate that was not
kept is said as loudly as a saturated load generator.
"""

from __future__ import annotations

from typing import Any


def shape_lines(summary: dict[str, Any]) -> list[str]:
    """Zero, one or two lines (a summary without the sections has none)."""
    lines = []
    bp = summary.get("breakpoint")
    if bp:
        lines.append(breakpoint_line(bp))
    arrival = summary.get("arrival")
    if arrival:
        lines.append(arrival_line(arrival))
    return lines


def breakpoint_line(bp: dict[str, Any]) -> str:
    """``breakpoint: knee at 8 users (step 2 of 5); 12 users broke authenticate: p95 < 200 (...)``."""
    steps = ", ".join(f"{s['users']} {_status(s)}" for s in bp.get("steps") or []) or "none"
    verdict, knee = bp.get("verdict"), bp.get("knee_users")
    if verdict == "knee":
        why = "; ".join(f"{b['rule']} ({b['message']})" for b in bp.get("broken_by") or [])
        head = f"knee at {knee} users (step {bp['knee_step']} of {bp['steps_planned']}); {bp['broke_at_users']} users broke {why}"
    elif verdict == "no step held":
        why = "; ".join(f"{b['rule']} ({b['message']})" for b in bp.get("broken_by") or [])
        head = f"NO STEP HELD: the first step ({bp['broke_at_users']} users) broke {why}"
    elif verdict == "never broke":
        head = f"never broke: every step held up to {knee} users (the knee is the top step; raise -u to find it)"
    elif verdict == "incomplete":
        head = f"incomplete: the run ended before the top step; held up to {knee if knee is not None else '-'} users"
    else:
        head = "running"
    return f"breakpoint: {head}   steps: {steps}"


def _status(step: dict[str, Any]) -> str:
    status = str(step.get("status"))
    return (
        "BROKE"
        if status == "broke"
        else status + (" (cut short)" if step.get("cut_short") and status == "held" else "")
    )


def arrival_line(arrival: dict[str, Any]) -> str:
    """``arrival: 10.0/s asked, 10.0/s achieved (58 sessions in 5.8 s), at most 4 at once: kept``."""
    asked = _rate(arrival.get("rate_from"), arrival.get("rate_to"))
    achieved = arrival.get("achieved_rate")
    ramp = arrival.get("rate_from") != arrival.get("rate_to")
    mean = f" ({_num(arrival.get('target_rate'))}/s over the run)" if ramp else ""
    head = (
        f"arrival: {asked} asked{mean}, {_num(achieved)}/s achieved "
        f"({arrival['started']} sessions in {arrival['duration_s']:.1f} s), at most {arrival['max_concurrent']} "
        f"at once of {arrival.get('users') or '-'} users"
    )
    if arrival.get("kept"):
        return head + ": kept"
    return f"{head}: NOT KEPT -- {arrival.get('warning')}"


def _rate(rate_from: Any, rate_to: Any) -> str:
    if rate_from == rate_to:
        return f"{_num(rate_from)}/s"
    return f"{_num(rate_from)}->{_num(rate_to)}/s"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
