"""What the harness keeps per Locust environment (one per process), and how to reach it.

Nearly every module of the Locust side reads this state, so it imports only leaves: the
settings, the counters of :mod:`harness.user.metrics` (which import nothing of the harness),
and the types of what it holds. Whatever acts on the state -- Locust's events, reports, the
gate, the web UI -- imports it, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import MasterRunner

from harness.emulator.launcher import EmulatorProcess
from harness.reports.thresholds import Rule
from harness.settings import Settings
from harness.user.metrics import HarnessMetrics


@dataclass
class RunState:
    """One process's run: its settings, counters, target and the verdict's inputs."""

    settings: Settings | None = None
    metrics: HarnessMetrics = field(default_factory=HarnessMetrics)
    stopping: Event = field(default_factory=Event)
    emulator: EmulatorProcess | None = None  # set when the harness started its own target
    worker_parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id -> its latest metrics
    peak_open: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    reports_path: str | None = None
    rules: list[Rule] = field(default_factory=list)
    monitor: gevent.Greenlet | None = None  # the abort-on-fail greenlet
    # the way out (harness.user.interrupts): outside stop signals seen, "stop waiting" and "reports written"
    stop_signals: int = 0
    hurry: Event = field(default_factory=Event)
    finishing: Event | None = None
    final_written: bool = False
    report_error: str | None = None  # the last "could not write the reports" line (said once, not per attempt)
    lost_workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id -> harness.user.workers record
    preflight: dict[str, dict[str, int]] = field(default_factory=dict)  # requests sent before the load, by step
    ui_started_with: dict[str, Any] = field(default_factory=dict)  # settings the web UI may not change (uiguard)


def state_of(environment: Environment) -> RunState:
    state = getattr(environment, "lp_harness", None)
    if state is None:
        state = RunState()
        environment.lp_harness = state  # type: ignore[attr-defined]
    return state


def settings_of(environment: Environment) -> Settings:
    state = state_of(environment)
    if state.settings is None:
        state.settings = Settings.from_options(environment.parsed_options)
    return state.settings


def metrics_of(environment: Environment) -> HarnessMetrics:
    return state_of(environment).metrics


def stopping_event(environment: Environment) -> Event:
    return state_of(environment).stopping


def has_run(environment: Environment) -> bool:
    """True once a test has started (a summary needs a run; before that it would invent a run id)."""
    runner = environment.runner
    return runner is not None and (state_of(environment).started_at is not None or bool(runner.stats.entries))


def merged_metrics(environment: Environment) -> dict[str, Any]:
    """This process's metrics, or on a master the sum of its workers' latest reports."""
    state = state_of(environment)
    if isinstance(environment.runner, MasterRunner):
        merged = HarnessMetrics.sum(list(state.worker_parts.values()))
        state.peak_open = max(state.peak_open, merged["sockets"]["open"])
        merged["sockets"]["peak_open"] = state.peak_open
        lost = sum(int(w.get("in_flight") or 0) for w in state.lost_workers.values())
        if lost:  # a lost worker's sessions in flight at its last report never end: "lost", not failed
            socket = merged["phases"]["socket"]
            socket["lost"] = int(socket.get("lost") or 0) + lost
        return merged
    return state.metrics.to_dict()
