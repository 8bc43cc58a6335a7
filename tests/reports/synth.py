"""Summaries made from seeded random latency samples, turned into Locust-style histograms.

Nothing here hard-codes an expected number: tests generate a base run and a changed candidate
(or two draws from the same distribution) and assert on the verdicts the comparison reaches.
"""

from __future__ import annotations

import random
from typing import Any

from harness.reports import histogram as H
from harness.reports.percentiles import MS_KEYS
from harness.reports.summary import FORMAT, VERSION

# step -> (phase, median ms, log-sd): roughly the shapes of real token/socket steps
DEFAULT_STEPS: dict[str, tuple[str, float, float]] = {
    "anonymous-authorize": ("token", 30.0, 0.35),
    "authenticate": ("token", 45.0, 0.35),
    "connect": ("socket", 60.0, 0.4),
    "request-conversation": ("socket", 25.0, 0.3),
    "ping": ("socket", 8.0, 0.3),
    "close-conversation": ("socket", 20.0, 0.3),
    "time-to-conversation": ("session", 170.0, 0.25),
}


def samples(rng: random.Random, n: int, median: float, sigma: float, shift: float = 0.0) -> list[float]:
    return [rng.lognormvariate(0.0, sigma) * median + shift for _ in range(n)]


def step_from_samples(values: list[float], *, phase: str, failures: int, duration_s: float) -> dict[str, Any]:
    """One ``steps`` entry exactly as Locust's StatsEntry would report these response times."""
    hist = H.from_samples(values)
    n = len(values)
    step: dict[str, Any] = {
        "phase": phase,
        "count": n,
        "failures": failures,
        "fail_ratio": failures / n if n else 0.0,
        "rps": n / duration_s if duration_s else 0.0,
        "mean_ms": sum(values) / n if n else None,
        "min_ms": min(values) if n else None,
        "max_ms": max(values) if n else None,
    }
    for key, q in MS_KEYS:
        step[key] = H.percentile(hist, n, q) if n else None
    step["histogram_ms"] = {str(k): v for k, v in hist.items()}
    return step


def make_summary(
    seed: int,
    *,
    n: int = 2000,
    shift_ms: dict[str, float] | None = None,
    fail_prob: dict[str, float] | None = None,
    socket_fail_prob: float = 0.002,
    users: int = 50,
    duration_s: float = 60.0,
    scenario: str = "load",
    target: str = "emulator",
    label: str | None = None,
    started_at: str = "2026-11-25T10:15:00Z",
    steps: dict[str, tuple[str, float, float]] | None = None,
) -> dict[str, Any]:
    """A whole summary.json for one synthetic run (format version 1)."""
    rng = random.Random(seed)
    shift_ms = shift_ms or {}
    fail_prob = fail_prob or {}
    out_steps = {}
    for name, (phase, median, sigma) in (steps or DEFAULT_STEPS).items():
        values = samples(rng, n, median, sigma, shift_ms.get(name, 0.0))
        failures = sum(1 for _ in range(n) if rng.random() < fail_prob.get(name, 0.001))
        out_steps[name] = step_from_samples(values, phase=phase, failures=failures, duration_s=duration_s)
    token_fail = out_steps.get("anonymous-authorize", {}).get("failures", 0) + out_steps.get("authenticate", {}).get(
        "failures", 0
    )
    socket_sessions = n - token_fail
    close_4401 = sum(1 for _ in range(socket_sessions) if rng.random() < socket_fail_prob)
    timeouts = sum(1 for _ in range(socket_sessions) if rng.random() < socket_fail_prob / 2)
    run_id = f"20261125-101500-{scenario}-{seed:04x}"[-32:]
    return {
        "format": FORMAT,
        "version": VERSION,
        "run": {
            "id": run_id,
            "label": label,
            "started_at": started_at,
            "ended_at": started_at,
            "duration_s": duration_s,
            "end_reason": "time limit",
            "users": users,
            "spawn_rate": 10.0,
            "scenario": scenario,
            "processes": 1,
            "target": target,
            "account": "lp-harness",
            "idp": f"http://127.0.0.1:{40000 + seed % 1000}",
            "messaging": f"http://127.0.0.1:{40000 + seed % 1000}",
            "harness_version": "0.1.0",
            "locust_version": "2.47.0",
            "python_version": "3.11.7",
            "hostname": "synth",
            "reports_dir": f"reports/{run_id}",
            "settings": {"hold_s": 3.0, "ping_interval_s": 1.0, "identity": "anonymous", "label": label},
        },
        "steps": out_steps,
        "phases": {
            "token": {
                "sessions": n,
                "failures": token_fail,
                "fail_ratio": token_fail / n,
                "categories": {"http 503": token_fail} if token_fail else {},
            },
            "socket": {
                "sessions": socket_sessions,
                "failures": close_4401 + timeouts,
                "fail_ratio": (close_4401 + timeouts) / socket_sessions if socket_sessions else 0.0,
                "categories": {k: v for k, v in (("close 4401", close_4401), ("pong timeout", timeouts)) if v},
            },
        },
        "sockets": {
            "open": 0,
            "peak_open": users,
            "opened": socket_sessions,
            "drops": 0,
            "server_closes": {"4401": close_4401} if close_4401 else {},
            "drops_per_hour": 0.0,
        },
        "pings": {"sent": socket_sessions * 3, "answered": socket_sessions * 3 - timeouts, "timeouts": timeouts},
        "thresholds": None,
    }
