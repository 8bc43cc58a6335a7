"""The words for a run's load shape: the breakpoint's knee and the open model's arrival rate.

Pure, from ``summary.json``'s ``breakpoint`` and ``arrival`` sections (docs/shapes.md), so
``summary.txt`` and the end of a headless run say what the shape found, and a rate that was not
kept is said as loudly as a saturated load generator. report.html (:mod:`.run_page`) and the web
UI's tab say it with the same functions, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def shape_lines(summary: Mapping[str, Any]) -> list[str]:
    """Zero, one or two lines (a summary without the sections has none)."""
    lines = []
    bp = summary.get("breakpoint")
    if bp:
        lines.append(breakpoint_line(bp))
    arrival = summary.get("arrival")
    if arrival:
        lines.append(arrival_line(arrival))
    return lines


def breakpoint_line(bp: Mapping[str, Any]) -> str:
    """``breakpoint: knee at 8 users (step 2 of 5); 12 users broke authenticate: p95 < 200 (...)``."""
    steps = ", ".join(f"{s['users']} {step_status(s)}" for s in bp.get("steps") or []) or "none"
    return f"breakpoint: {breakpoint_verdict(bp)}   steps: {steps}"


def breakpoint_verdict(bp: Mapping[str, Any]) -> str:
    """What the steps found, in words (the terminal's line, report.html and the web UI say it alike)."""
    verdict, knee = bp.get("verdict"), bp.get("knee_users")
    if verdict == "knee":
        return (
            f"knee at {knee} users (step {bp['knee_step']} of {bp['steps_planned']}); "
            f"{bp['broke_at_users']} users broke {broken_text(bp.get('broken_by'))}"
        )
    if verdict == "no step held":
        return f"NO STEP HELD: the first step ({bp['broke_at_users']} users) broke {broken_text(bp.get('broken_by'))}"
    if verdict == "never broke":
        return f"never broke: every step held up to {knee} users (the knee is the top step; raise -u to find it)"
    if verdict == "incomplete":
        return f"incomplete: the run ended before the top step; held up to {knee if knee is not None else '-'} users"
    return "running"


def broken_text(broken: Sequence[Mapping[str, Any]] | None) -> str:
    """The rules a step broke, each with its message: ``authenticate: p95 < 200 (p95 = 230 ms, ...)``."""
    return "; ".join(f"{b['rule']} ({b['message']})" for b in broken or [])


def step_status(step: Mapping[str, Any]) -> str:
    """``held``, ``BROKE``, ``cut short`` or ``held (cut short)``: a step as the reports name it."""
    status = str(step.get("status"))
    return (
        "BROKE"
        if status == "broke"
        else status + (" (cut short)" if step.get("cut_short") and status == "held" else "")
    )


def arrival_line(arrival: Mapping[str, Any]) -> str:
    """``arrival: 10.0/s asked, 10.0/s achieved (58 sessions in 5.8 s), at most 4 at once: kept``."""
    asked = asked_rate(arrival)
    achieved = arrival.get("achieved_rate")
    ramp = arrival.get("rate_from") != arrival.get("rate_to")
    mean = f" ({rate_num(arrival.get('target_rate'))}/s over the run)" if ramp else ""
    head = (
        f"arrival: {asked} asked{mean}, {rate_num(achieved)}/s achieved "
        f"({arrival['started']} sessions in {arrival['duration_s']:.1f} s), at most {arrival['max_concurrent']} "
        f"at once of {arrival.get('users') or '-'} users"
    )
    if arrival.get("kept"):
        return head + ": kept"
    return f"{head}: NOT KEPT -- {arrival.get('warning')}"


def asked_rate(arrival: Mapping[str, Any]) -> str:
    """The rate asked: ``10.0/s``, or ``2.0->20.0/s`` for a ramp."""
    rate_from, rate_to = arrival.get("rate_from"), arrival.get("rate_to")
    if rate_from == rate_to:
        return f"{rate_num(rate_from)}/s"
    return f"{rate_num(rate_from)}->{rate_num(rate_to)}/s"


def rate_num(value: Any) -> str:
    """A rate with one decimal, ``-`` when there is none (a run too short to have one)."""
    return "-" if value is None else f"{float(value):.1f}"
