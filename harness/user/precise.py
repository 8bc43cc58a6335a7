"""Each step's latencies in a precise histogram beside Locust's rounded one (:mod:`harness.reports.loghist`).

A listener on Locust's ``request`` event (every step enters it through ``StepReporter.report``)
records each step's response time; Locust's own stats and UI stay as they are. Workers send their
histograms to the master with every stats report (cumulative since the test started: the master
keeps each worker's latest and adds its own, so nothing is counted twice and a late report only
lags). The summary's percentiles come from the merged histograms (:func:`histograms`).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment
from locust.runners import WorkerRunner

from harness.reports import loghist
from harness.user.steps import STEP_PHASES


class PreciseStats:
    """One process's histograms: step -> bucket -> count."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[int, int]] = {}

    def record(self, step: str, response_time_ms: float) -> None:
        hist = self.steps.get(step)
        if hist is None:
            hist = self.steps[step] = {}
        key = loghist.bucket(response_time_ms)
        hist[key] = hist.get(key, 0) + 1

    def reset(self) -> None:
        self.steps = {}


def register(environment: Environment) -> PreciseStats:
    """Record this process's steps; on a master, keep the workers' (call once, from ``init``)."""
    existing: PreciseStats | None = getattr(environment, "lp_precise", None)
    if existing is not None:
        return existing
    stats = PreciseStats()
    environment.lp_precise = stats
    environment.lp_precise_parts = {}
    events = environment.events

    def on_request(request_type: str, name: str, response_time: float, **_: Any) -> None:
        if STEP_PHASES.get(name) == request_type:
            stats.record(name, response_time)

    def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["lp_precise"] = {step: dict(hist) for step, hist in stats.steps.items()}

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        part = data.get("lp_precise")
        if part is not None:
            environment.lp_precise_parts[client_id] = {step: loghist.normalize(h) for step, h in part.items()}

    def on_reset(**_: Any) -> None:  # a new test, or the web UI's "reset stats": as Locust's own
        stats.reset()
        environment.lp_precise_parts = {}

    events.request.add_listener(on_request)
    events.test_start.add_listener(on_reset)
    events.reset_stats.add_listener(on_reset)
    if isinstance(environment.runner, WorkerRunner):
        events.report_to_master.add_listener(on_report_to_master)
    else:
        events.worker_report.add_listener(on_worker_report)
    return stats


def histograms(environment: Environment) -> dict[str, dict[int, int]]:
    """Every step's histogram over the run: this process's and, on a master, each worker's latest."""
    own: PreciseStats | None = getattr(environment, "lp_precise", None)
    parts = [own.steps] if own is not None else []
    parts += list(getattr(environment, "lp_precise_parts", {}).values())
    steps = {step for part in parts for step in part}
    return {step: loghist.merge(*(part.get(step, {}) for part in parts)) for step in steps}
