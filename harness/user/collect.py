"""The live run as a ``summary.json``: Locust's step entries, the run's metadata, the harness metrics.

One function, :func:`current_summary`, serves everyone who needs the run so far: the report
writer, the abort-on-fail gate and the web UI's download. The summary's shape itself is
:func:`harness.reports.summary.build_summary`'s (pure, no Locust); this module only reads
the live environment.
"""

from __future__ import annotations

import os
import platform
import secrets
import socket
import time
from datetime import datetime, timezone
from typing import Any

import locust
from locust import stats as locust_stats
from locust.env import Environment
from locust.runners import MasterRunner

import harness
from harness.reports import loghist
from harness.reports.percentiles import MS_KEYS
from harness.reports.summary import build_summary
from harness.user import arrival, breakpoint, loadgen, precise, timeline
from harness.user.state import merged_metrics, state_of
from harness.user.steps import STEP_ORDER, STEP_PHASES


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
    for key, fraction in MS_KEYS:
        # Locust's percentile is its histogram bucket (4.6 ms is kept as 5): never past the exact extremes
        data[key] = (
            min(max(entry.get_response_time_percentile(fraction), data["min_ms"]), data["max_ms"]) if count else None
        )
    data["histogram_ms"] = {str(k): v for k, v in sorted(entry.response_times.items())}
    return data


def collect_steps(environment: Environment) -> dict[str, dict[str, Any]]:
    """Each step's numbers; its percentiles from the precise histogram (:mod:`harness.user.precise`)."""
    entries = environment.runner.stats.entries
    exact = precise.histograms(environment)
    steps = {}
    for name in STEP_ORDER:
        phase = STEP_PHASES[name]
        entry = entries.get((name, phase))
        if entry is not None:
            steps[name] = step_stats(entry, phase)
            hist = exact.get(name)
            if hist and entry.num_requests:
                _precise_percentiles(steps[name], hist)
    return steps


def _precise_percentiles(step: dict[str, Any], hist: dict[int, int]) -> None:
    """The step's percentiles within 1 % (never past its exact min and max), and the histogram they came from."""
    lo, hi = step["min_ms"], step["max_ms"]
    for key, fraction in MS_KEYS:
        step[key] = loghist.percentile(hist, fraction, lo, hi)
    step["histogram_log"] = {str(k): v for k, v in sorted(hist.items())}


def run_metadata(environment: Environment) -> dict[str, Any]:
    """The summary's ``run`` section; the first call of a run picks its id and folder."""
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
        # what the preflight sent to the target before the load (the target's own counts include it)
        "preflight": getattr(state, "preflight", None) or {},
    }


def current_summary(environment: Environment) -> dict[str, Any]:
    """The run so far as a summary (no ``thresholds`` verdict: :mod:`harness.user.gate` adds it)."""
    state = state_of(environment)
    metrics = merged_metrics(environment)
    started = state.started_at or environment.runner.stats.start_time
    metrics["load_generator"] = loadgen.summary_section(environment, started, state.ended_at or time.time())
    run_timeline = timeline.timeline_of(environment)
    metrics["timeline"] = run_timeline.section() if run_timeline is not None else None
    summary = build_summary(run_metadata(environment), collect_steps(environment), metrics)
    shapes = {"arrival": arrival.section_of(environment), "breakpoint": breakpoint.section_of(environment, summary)}
    summary.update({name: section for name, section in shapes.items() if section is not None})  # docs/shapes.md
    return summary


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
