"""Wires the harness into Locust's events; the locustfile calls :func:`register` once.

- ``init_command_line_parser``: the ``--lp-*`` options (:mod:`harness.settings`);
- ``init``: the web UI tab and the load generator monitor (:mod:`harness.webui`); on the master
  or the only process, the target (:mod:`harness.user.target`);
- ``test_start``/``test_stopping``/``reset_stats``: per-run state on every process;
- ``report_to_master``/``worker_report``: each worker's metrics reach the master;
- ``test_stop``/``quitting``/``quit``: reports are written and the terminal summary printed, also on
  SIGTERM and Ctrl-C, because Locust fires these on every way out (a second Ctrl-C hurries the
  stop instead of losing the reports: :mod:`harness.user.interrupts`);
- every process freezes what start-up made out of the collector's pauses (:mod:`harness.heap`);
- every process keeps Locust's per-second request counts to the last minute (:mod:`harness.user.statsbound`);
- on a master, lost workers (no heartbeat) are watched for (:mod:`harness.user.workers`), and a
  worker's target-down abort ends the run (:mod:`harness.user.backoff`).

This is the only module of the Locust side that knows all the others; none of them imports it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner

from harness import heap, webui
from harness.options import add_arguments
from harness.reports import exitcodes
from harness.settings import Settings, SettingsError
from harness.user import backoff, gate, interrupts, loadgen, precise, prometheus, statsbound, timeline, uiguard, workers
from harness.user.arrival import install as install_arrivals
from harness.user.reporting import check_reports_dir, print_summary, write_reports
from harness.user.scenario import install_shape
from harness.user.state import merged_metrics, state_of
from harness.user.target import resolve_target, stop_emulator

log = logging.getLogger("lp-harness")


def register(events: Events) -> None:
    """Attach the harness to Locust; called once by the locustfile."""
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:  # a library use of Environment: nothing to set up
        return
    events, state = environment.events, state_of(environment)
    webui.install(environment)  # every process: load-generator health (+ worker->master); the UI tab where there is one
    statsbound.install(environment)  # every process: Locust's per-second counts stay a minute long
    precise.register(environment)  # every process: each step's latencies within 1 % (+ worker->master)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
    install_arrivals(environment)  # every process: the open model's pacer (after _on_test_start: it reads the settings)
    coordinator = not isinstance(environment.runner, WorkerRunner)
    if coordinator:
        # "quit" fires after Locust printed its own tables: our summary is the last thing a run shows.
        events.quit.add_listener(lambda **_: print_summary(environment))
    events.reset_stats.add_listener(state.metrics.reset)
    events.report_to_master.add_listener(
        lambda client_id, data: data.update(lp_metrics=state.metrics.to_dict(), lp_worker=workers.identity())
    )
    events.worker_report.add_listener(
        lambda client_id, data: (
            state.worker_parts.__setitem__(client_id, data["lp_metrics"]) if "lp_metrics" in data else None
        )
    )
    # Locust's own SIGTERM handler shuts down; ours (registered first, so run first) records why.
    interrupts.install(environment)
    if coordinator:
        workers.install(environment)
        if isinstance(environment.runner, MasterRunner):
            backoff.listen_for_workers(environment)  # a worker's target-down abort ends the whole run
        state.ui_started_with = uiguard.snapshot(environment.parsed_options)  # what the web UI may not change
        install_shape(environment)  # --lp-scenario spike/breakpoint/arrival: its shape
        _check_reports_dir(environment)  # before the emulator or any user starts
        resolve_target(environment)
        prometheus.install(environment)  # /metrics, when --lp-prometheus-port is set (after the settings are read)
    heap.freeze_startup()  # start-up's objects stay out of every full collection's pause (harness/heap.py)


def _check_reports_dir(environment: Environment) -> None:
    """An unusable reports folder is a configuration error now, not a run that writes nothing."""
    try:
        check_reports_dir(getattr(environment.parsed_options, "lp_reports_dir", None) or "reports")
    except SettingsError as exc:
        sys.stderr.write(f"lp-harness: configuration error: {exc}\n")
        sys.stderr.flush()
        sys.exit(exitcodes.ERROR)


def _on_test_start(environment: Environment, **_: Any) -> None:
    state = state_of(environment)
    state.stopping.clear()
    state.started_at, state.ended_at, state.end_reason = time.time(), None, None
    state.final_written = False
    if environment.parsed_options is not None:
        coordinator = not isinstance(environment.runner, WorkerRunner)
        if coordinator:  # before the master passes its options on to the workers
            uiguard.enforce(environment.parsed_options, state.ui_started_with)
        try:  # options may have changed in the web UI or arrived from the master
            state.settings = Settings.from_options(environment.parsed_options)
            if coordinator:
                state.rules = gate.rules_for(state.settings)
                state.reports_path = None  # a new run id for every test run (web UI: many per process)
                check_reports_dir(state.settings.reports_dir)  # the web UI's form may have changed it
                state.monitor = gate.start_monitor(environment, state.rules)
                timeline.start(environment, state.settings.timeline_interval_s, _reader(environment))
        except SettingsError as exc:
            log.error("configuration error: %s", exc)
            if coordinator and environment.runner is not None:
                environment.runner.stop()


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    state_of(environment).stopping.set()


def _reader(environment: Environment) -> timeline.Reader:
    """What the timeline reads each interval: seconds into the run, the run's totals, the generator now."""
    state = state_of(environment)

    def read() -> tuple[float, dict[str, Any], dict[str, Any]]:
        users = int(getattr(environment.runner, "user_count", 0) or 0)
        now = timeline.cumulative(environment, merged_metrics(environment), users)
        sample = loadgen.sample_now(environment)
        generator = {k: sample[k] for k in ("cpu_percent", "loop_lag_ms", "loop_lag_max_ms", "saturated")}
        return time.time() - (state.started_at or time.time()), now, generator

    return read


def _on_test_stop(environment: Environment, **_: Any) -> None:
    state = state_of(environment)
    state.ended_at = time.time()
    timeline.stop(environment)
    if state.monitor is not None:
        state.monitor.kill(block=False)
        state.monitor = None
    if not isinstance(environment.runner, WorkerRunner) and not state.final_written:
        write_reports(environment)  # (a stop after the final reports, on the way out, keeps them)


def _on_quitting(environment: Environment, **_: Any) -> None:
    try:
        if not isinstance(environment.runner, WorkerRunner):
            interrupts.finish_run(environment)
    finally:
        stop_emulator(environment)
