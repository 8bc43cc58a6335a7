"""Wires the harness into Locust's events: options, target resolution, merge, reports.

- ``init_command_line_parser``: the ``--lp-*`` options (:mod:`harness.settings`);
- ``init`` (master or local): resolve the target -- the embedded emulator when no host is set,
  CSDS discovery when asked -- check it, and fail fast with one clear message;
- ``test_start``/``test_stopping``/``reset_stats``: per-run state on every process;
- ``report_to_master``/``worker_report``: each worker's :class:`HarnessMetrics` reach the master;
- ``quitting``/``quit``: reports are written and the terminal summary printed, also on SIGTERM
  and Ctrl-C, because Locust fires these on every way out.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.settings import EMULATOR_ACCOUNT, Settings, SettingsError, add_arguments, wants_embedded_emulator
from harness.user import gate
from harness.user.metrics import HarnessMetrics

log = logging.getLogger("lp-harness")
EXIT_CONFIG_ERROR = 2


@dataclass
class RunState:
    """What the harness keeps per Locust environment (one per process)."""

    settings: Settings | None = None
    metrics: HarnessMetrics = field(default_factory=HarnessMetrics)
    stopping: Event = field(default_factory=Event)
    emulator: Any = None  # harness.emulator.launcher.EmulatorProcess when embedded
    worker_parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_open: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    reports_path: str | None = None
    rules: list[Any] = field(default_factory=list)  # harness.reports.thresholds.Rule
    monitor: Any = None  # the abort-on-fail greenlet


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


def merged_metrics(environment: Environment) -> dict[str, Any]:
    """This process's metrics, or on a master the sum of its workers' latest reports."""
    state = state_of(environment)
    if isinstance(environment.runner, MasterRunner):
        merged = HarnessMetrics.sum(list(state.worker_parts.values()))
        state.peak_open = max(state.peak_open, merged["sockets"]["open"])
        merged["sockets"]["peak_open"] = state.peak_open
        return merged
    return state.metrics.to_dict()


# ---------------------------------------------------------------------------- target resolution
def resolve_target(environment: Environment) -> None:
    """Master/local: fill in the hosts (embedded emulator or CSDS) and validate; exit 2 on a bad setting."""
    options = environment.parsed_options
    state = state_of(environment)
    try:
        if wants_embedded_emulator(options):
            _start_embedded_emulator(environment, state)
        elif (options.lp_discovery or "").strip() and not (options.lp_idp and options.lp_asyncmessagingent):
            from harness.user.discovery import discover

            options.lp_idp, options.lp_asyncmessagingent = discover(options.lp_discovery, options.lp_account)
        state.settings = Settings.from_options(options)
        state.rules = gate.rules_for(state.settings)
        if options.headless or options.autostart:
            from harness.user.discovery import check_reachable

            check_reachable(state.settings)
    except SettingsError as exc:
        _fail(environment, str(exc))


def _start_embedded_emulator(environment: Environment, state: RunState) -> None:
    from harness.emulator.launcher import EmulatorProcess

    options = environment.parsed_options
    extra = (options.lp_emulator_args or "").split()
    emulator = EmulatorProcess(extra)
    try:
        emulator.start()
    except Exception as exc:  # the launcher says why (port, bad --lp-emulator-args...)
        raise SettingsError(f"the embedded emulator did not start: {exc} (check --lp-emulator-args)") from None
    state.emulator = emulator
    options.lp_idp = options.lp_asyncmessagingent = options.lp_embedded_url = emulator.url
    options.lp_account = options.lp_account or EMULATOR_ACCOUNT
    log.info(
        "no LP_IDP/LP_ASYNCMESSAGINGENT set: using the embedded emulator at %s (pid %s)", emulator.url, emulator.pid
    )


def _fail(environment: Environment, message: str) -> None:
    """One clear line, no traceback, exit code 2; the embedded emulator (if any) is stopped first."""
    stop_emulator(environment)
    sys.stderr.write(f"lp-harness: configuration error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_CONFIG_ERROR)


def stop_emulator(environment: Environment) -> None:
    state = state_of(environment)
    if state.emulator is not None:
        emulator, state.emulator = state.emulator, None
        emulator.stop()


# ---------------------------------------------------------------------------- event listeners
def register(events: Any) -> None:
    """Attach the harness to Locust; called once by the locustfile."""
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:  # a library use of Environment: nothing to set up
        return
    events, state = environment.events, state_of(environment)
    from harness import webui

    webui.install(environment)  # every process: load-generator health (+ worker->master); the UI tab where there is one
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
    if not isinstance(environment.runner, WorkerRunner):
        # "quit" fires after Locust printed its own tables: our summary is the last thing a run shows.
        from harness.user.reporting import print_summary

        events.quit.add_listener(lambda **_: print_summary(environment))
    events.reset_stats.add_listener(state.metrics.reset)
    events.report_to_master.add_listener(
        lambda client_id, data: data.__setitem__("lp_metrics", state.metrics.to_dict())
    )
    events.worker_report.add_listener(
        lambda client_id, data: (
            state.worker_parts.__setitem__(client_id, data["lp_metrics"]) if "lp_metrics" in data else None
        )
    )
    if not isinstance(environment.runner, WorkerRunner):
        # Locust's own SIGTERM handler shuts down; this one (registered first, so run first) records why.
        gevent.signal_handler(signal.SIGTERM, lambda: setattr(state, "end_reason", state.end_reason or "sigterm"))
        resolve_target(environment)


def _on_test_start(environment: Environment, **_: Any) -> None:
    state = state_of(environment)
    state.stopping.clear()
    state.started_at, state.ended_at, state.end_reason = time.time(), None, None
    if environment.parsed_options is not None:
        coordinator = not isinstance(environment.runner, WorkerRunner)
        try:  # options may have changed in the web UI or arrived from the master
            state.settings = Settings.from_options(environment.parsed_options)
            if coordinator:
                state.rules = gate.rules_for(state.settings)
                state.reports_path = None  # a new run id for every test run (web UI: many per process)
                state.monitor = gate.start_monitor(environment, state.rules)
        except SettingsError as exc:
            log.error("configuration error: %s", exc)
            if coordinator and environment.runner is not None:
                environment.runner.stop()


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    state_of(environment).stopping.set()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    state = state_of(environment)
    state.ended_at = time.time()
    if state.monitor is not None:
        state.monitor.kill(block=False)
        state.monitor = None
    if not isinstance(environment.runner, WorkerRunner):
        from harness.user.reporting import write_reports

        write_reports(environment)


def _on_quitting(environment: Environment, **_: Any) -> None:
    try:
        if not isinstance(environment.runner, WorkerRunner):
            from harness.user.reporting import write_reports

            state = state_of(environment)
            state.ended_at = state.ended_at or time.time()
            if state.end_reason is None:
                from harness.user.reporting import end_reason

                state.end_reason = end_reason(environment)
            runner = environment.runner
            if runner is not None and runner.state in ("spawning", "running"):
                runner.stop()  # users close their conversations and sockets before the target goes away
            write_reports(environment, final=True)
    finally:
        stop_emulator(environment)
