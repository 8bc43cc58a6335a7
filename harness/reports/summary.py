"""Build ``summary.json`` (format: docs/summary-format.md, schema: harness/reports/summary.schema.json).

Pure: it takes plain dicts (the Locust side extracts them) and returns the summary dict, so the
same code serves a live run, a test, and any tool that rewrites summaries.
"""

from __future__ import annotations

from typing import Any, Final

from harness.reports.loadshape import shape_lines
from harness.reports.percentiles import display, ms_key

FORMAT: Final = "lp-harness/summary"  # the schema's "format" const; readers check it (loading.py)
VERSION: Final = 1  # bumps on a breaking change; the schema's "version" const
TABLE_QUANTILES: Final = (0.50, 0.95, 0.99)  # the end-of-run table's latency columns (a terminal is narrow)


def build_summary(
    run: dict[str, Any],
    steps: dict[str, dict[str, Any]],
    metrics: dict[str, Any],
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of one run: ``run`` metadata, per-step stats, and the harness metrics.

    ``conversations`` (opened, closed, left open and why, the cleanup's calls), ``backoff``
    (pauses, breaker trips), ``reconnect`` (drops, tries, recovered, lost) and ``messages``
    (sent, received, replied, lost, receipts, typing), ``load_generator`` (the generator's health
    and the run's verdict) and ``timeline`` (the run over time) are optional: summaries written
    before they existed have none.
    """
    summary = {
        "format": FORMAT,
        "version": VERSION,
        "run": run,
        "steps": steps,
        "phases": metrics["phases"],
        "sockets": metrics["sockets"],
        "pings": metrics["pings"],
        "thresholds": thresholds,
    }
    for optional in ("conversations", "backoff", "reconnect", "messages", "load_generator", "timeline"):
        if metrics.get(optional) is not None:
            summary[optional] = metrics[optional]
    return summary


def terminal_table(summary: dict[str, Any]) -> str:
    """Steps and phases side by side, for the end of a headless run."""
    step_rows = [("step", "phase", "count", "fail", *(display(q) for q in TABLE_QUANTILES), "max", "rps")]
    for name, s in summary["steps"].items():
        step_rows.append(
            (
                name,
                s["phase"],
                str(s["count"]),
                f"{s['failures']} ({s['fail_ratio']:.2%})",
                *(_ms(s.get(ms_key(q))) for q in TABLE_QUANTILES),
                _ms(s.get("max_ms")),
                f"{s['rps']:.1f}",
            )
        )
    phase_rows = [("phase", "sessions", "failed", "ratio", "top categories")]
    for name, p in summary["phases"].items():
        top = ", ".join(f"{k} x{v}" for k, v in list(p["categories"].items())[:3]) or "-"
        if p.get("interrupted"):
            top += f" (+{p['interrupted']} interrupted by the stop)"
        phase_rows.append((name, str(p["sessions"]), str(p["failures"]), f"{p['fail_ratio']:.2%}", top))
    left, right = _table(step_rows), _table(phase_rows)
    width = max((len(line) for line in left), default=0)
    lines = [f"{a:<{width}}   {b}" for a, b in zip(left, right + [""] * (len(left) - len(right)), strict=False)]
    lines.extend(right[len(left) :])
    sockets, pings, run = summary["sockets"], summary["pings"], summary["run"]
    lines.append("")
    lines.append(
        f"sockets: peak {sockets['peak_open']} open, {sockets['opened']} opened, {sockets['open']} still open, "
        f"{sockets['drops']} dropped, server closes {sockets['server_closes'] or '-'}   "
        f"pings: {pings['sent']} sent, {pings['answered']} answered, {pings['timeouts']} timed out"
    )
    conversations, backoff = summary.get("conversations"), summary.get("backoff")
    if conversations:
        why = ", ".join(f"{k} x{v}" for k, v in (conversations.get("left_open_reasons") or {}).items())
        unknown = int((conversations.get("cleanup") or {}).get("unconfirmed") or 0)
        lines.append(
            f"conversations: {conversations['opened']} opened, {conversations['closed']} closed "
            f"({conversations['closed_by_cleanup']} by the cleanup), {conversations['left_open']} left open"
            + (f" ({why})" if why else "")
            + (f", {unknown} request(s) whose outcome is unknown" if unknown else "")
        )
    if backoff and (backoff.get("pauses") or backoff.get("breaker_trips")):
        lines.append(
            f"backoff: {backoff['pauses']} pauses after failures ({backoff['pause_s']:.0f} s in all, "
            f"{backoff['throttled']} throttled), target down {backoff['breaker_trips']} time(s), "
            f"{backoff['breaker_waits']} attempts held back by the breaker"
        )
    reconnect = summary.get("reconnect")
    if reconnect and (reconnect.get("drops") or reconnect.get("refreshes")):
        lines.append(
            f"reconnects: {reconnect['drops']} drops, {reconnect['reconnects']} reconnects, "
            f"{reconnect['recovered']} recovered on their conversation, "
            f"{reconnect['lost']} lost; {reconnect['refreshes']} tokens renewed mid-hold"
        )
    messages = summary.get("messages")
    if messages and (messages.get("sent") or messages.get("received")):
        receipts = sum((messages.get("receipts_sent") or {}).values())
        lines.append(
            f"messages: {messages['sent']} sent, {messages['replied']} replied, {messages['lost']} lost; "
            f"{messages['received']} agent messages received, {receipts} receipts sent"
        )
    lines.extend(shape_lines(summary))  # the breakpoint's knee, the arrival rate kept or not (docs/shapes.md)
    generator = verdict_line(summary.get("load_generator"))
    if generator:
        lines.append(generator)
    lines.append(f"run {run['id']} ({run.get('end_reason') or 'running'}), reports in {run.get('reports_dir', '-')}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append(
            "  ".join(
                cell.ljust(w) if i < 2 or n == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=False))
            )
        )
    return out


def verdict_line(generator: dict[str, Any] | None) -> str | None:
    """The terminal's line about the load generator (None for summaries without the section)."""
    if not generator:
        return None
    total = generator.get("total") or {}
    lag = total.get("loop_lag_p99_ms")
    busy = total.get("loop_busy_percent_max")
    pause = total.get("gc_pause_max_ms")
    health = (
        f"peak CPU {total.get('cpu_percent_max') or 0:.0f}%"
        + (f", loop busy {busy:.0f}%" if busy is not None else "")
        + (f", loop lag p99 {lag:.0f} ms" if lag is not None else "")
        + (f", longest GC pause {pause:.0f} ms" if pause is not None else "")
    )
    if generator.get("verdict") != "saturated":
        return f"load generator: trustworthy ({health})"
    when = ", ".join(f"{p['from_s']:.0f}-{p['to_s']:.0f} s" for p in generator["saturated_periods"][:5])
    return (
        f"load generator: SATURATED {generator['saturated_share']:.1%} of the run ({when}; {health}): "
        f"{'; '.join(generator['reasons'][:3])} -- its latencies include its own queueing; "
        "add processes (--processes N) or lower users per process"
    )


def generator_verdict(summary: dict[str, Any]) -> tuple[str, str] | None:
    """(verdict, its terminal line) for JUnit; None for summaries without the section."""
    section = summary.get("load_generator")
    line = verdict_line(section)
    return None if not section or line is None else (str(section.get("verdict")), line)
