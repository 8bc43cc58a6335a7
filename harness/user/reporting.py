"""The Locust side of reporting: extract stats, write ``reports/<run-id>/``, print the summary.

Each run's folder holds Locust's own reports (``locust_report.html``, ``locust_stats.csv``,
``locust_failures.csv``, ``locust_exceptions.csv``, ``locust_stats.json``) and ours
(``summary.json``, ``summary.txt``). They are written when the test stops and again when Locust
quits -- on a time limit, Ctrl-C or SIGTERM alike -- so a run never loses the stats it has.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import locust
from locust import stats as locust_stats
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import MasterRunner

import harness
from harness.reports import thresholds
from harness.reports.run_page import run_html
from harness.reports.summary import PERCENTILES, build_summary, terminal_table
from harness.user import gate
from harness.user.lifecycle import merged_metrics, state_of
from harness.user.steps import STEP_ORDER, STEP_PHASES

log = logging.getLogger("lp-harness")


def step_stats(entry: locust_stats.StatsEntry, phase: str) -> dict[str, Any]:
    """One step's numbers, percentiles computed by Locust itself from its histogram."""
    count = entry.num_requests
    data: dict[str, Any] = {
        "phase": phase,
        "count": count,
        "failures": entry.num_failures,
        "fail_ratio": entry.fail_ratio,
        "rps": entry.total_rps,
        "mean_ms": entry.avg_response_time if count else None,
        "min_ms": entry.min_response_time if count else None,
        "max_ms": entry.max_response_time if count else None,
    }
    for key, fraction in PERCENTILES:
        # Locust's percentile is its histogram bucket (4.6 ms is kept as 5): never past the exact extremes
        data[key] = (
            min(max(entry.get_response_time_percentile(fraction), data["min_ms"]), data["max_ms"]) if count else None
        )
    data["histogram_ms"] = {str(k): v for k, v in sorted(entry.response_times.items())}
    return data


def collect_steps(environment: Environment) -> dict[str, dict[str, Any]]:
    entries = environment.runner.stats.entries
    steps = {}
    for name in STEP_ORDER:
        phase = STEP_PHASES[name]
        entry = entries.get((name, phase))
        if entry is not None:
            steps[name] = step_stats(entry, phase)
    return steps


def run_metadata(environment: Environment) -> dict[str, Any]:
    state = state_of(environment)
    options = environment.parsed_options
    settings = state.settings
    runner = environment.runner
    started = state.started_at or environment.runner.stats.start_time
    ended = state.ended_at or time.time()
    if state.reports_path is None:
        scenario = settings.scenario if settings else "custom"
        stamp = datetime.fromtimestamp(started, timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{scenario}-{secrets.token_hex(2)}"
        base = settings.reports_dir if settings else "reports"
        state.reports_path = os.path.join(base, run_id)
    users = getattr(runner, "target_user_count", None) or getattr(options, "num_users", None)
    return {
        "id": os.path.basename(state.reports_path),
        "label": settings.label if settings else None,
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "duration_s": round(ended - started, 3),
        "end_reason": state.end_reason,
        "users": users,
        "spawn_rate": getattr(options, "spawn_rate", None),
        "scenario": settings.scenario if settings else None,
        "processes": max(1, len(state.worker_parts)) if isinstance(runner, MasterRunner) else 1,
        "target": settings.target if settings else None,
        "account": settings.account if settings else None,
        "idp": settings.idp if settings else None,
        "messaging": settings.messaging if settings else None,
        "harness_version": harness.__version__,
        "locust_version": locust.__version__,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "reports_dir": state.reports_path,
        "settings": settings.public() if settings else {},
    }


def current_summary(environment: Environment) -> dict[str, Any]:
    return build_summary(run_metadata(environment), collect_steps(environment), merged_metrics(environment))


def write_reports(environment: Environment, final: bool = False) -> str | None:
    """Write (or rewrite) this run's folder; returns its path. Never raises: a report failure is logged."""
    state = state_of(environment)
    if environment.runner is None or (state.started_at is None and not environment.runner.stats.entries):
        return None  # no test ever started
    if final and state.end_reason is None:
        state.end_reason = end_reason(environment)
    try:
        summary = current_summary(environment)
        report = gate.verdict(summary, state.rules, final=final)
        if final:
            gate.set_exit_code(environment, summary, bool(state.rules))
        folder = Path(state.reports_path or "reports")
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")
        text = terminal_table(summary)
        if report is not None:
            text += "\n\n" + thresholds.terminal_table(report)
            _write(folder / "junit.xml", thresholds.junit_xml(report, run_id=summary["run"]["id"]))
        _write(folder / "summary.txt", text + "\n")
        _write(folder / "report.html", run_html(summary))
        _write(folder / "locust_report.html", get_html_report(environment, show_download_link=False))
        # Locust's own save_stats_json() empties the entries it serialises; serialise without resetting.
        entries = [e.serialize() for e in environment.runner.stats.entries.values() if e.num_requests or e.num_failures]
        _write(folder / "locust_stats.json", json.dumps(entries, indent=4) + "\n")
        csv = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
        for name, method in (
            ("stats", csv.requests_csv),
            ("failures", csv.failures_csv),
            ("exceptions", csv.exceptions_csv),
        ):
            with open(folder / f"locust_{name}.csv", "w", newline="", encoding="utf-8") as handle:
                import csv as csv_module

                method(csv_module.writer(handle))
        return str(folder)
    except Exception:  # reports must never take the run down with them
        log.exception("writing reports failed")
        return None


def print_summary(environment: Environment) -> None:
    state = state_of(environment)
    if state.reports_path is None:
        return
    try:
        text = (Path(state.reports_path) / "summary.txt").read_text()
    except OSError:
        return
    sys.stdout.write("\n" + text + "\n")
    sys.stdout.flush()


def end_reason(environment: Environment) -> str:
    """How the run ended, when nothing (SIGTERM, an abort) said so already."""
    options = environment.parsed_options
    state = state_of(environment)
    run_time = getattr(options, "run_time", None)
    if run_time and state.started_at and time.time() - state.started_at >= run_time - 1:
        return "time limit"
    if environment.runner is not None and environment.runner.state in ("spawning", "running"):
        return "sigint"  # Locust is quitting with users still running: Ctrl-C
    return "stopped"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
