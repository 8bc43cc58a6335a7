"""Thresholds during and after a run: the release gate.

Rules come from ``--lp-thresholds FILE`` and ``--lp-threshold RULE`` (harness.reports.thresholds
parses and evaluates them; this module only runs them against the live run). Rules marked
``abortOnFail`` are checked every few seconds once their ``delayAbortEval`` has passed, and a
broken one stops the run with end reason ``threshold abort``. At the end the verdict goes into
``summary.json``, ``junit.xml`` and the process exit code (docs/reports.md, "Exit codes"); a run
stopped from outside or one that lost a worker is still judged, but exits with its own code.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment

from harness.reports import exitcodes
from harness.reports.thresholds import Rule, ThresholdError, ThresholdMonitor, ThresholdReport, evaluate, load_rules
from harness.settings import Settings, SettingsError
from harness.user.collect import current_summary
from harness.user.state import state_of

log = logging.getLogger("lp-harness")
CHECK_INTERVAL_S = 2.0


def rules_for(settings: Settings) -> list[Rule]:
    """The run's rules; a bad file or rule is a configuration error naming the fix."""
    try:
        return load_rules(settings.threshold_files, settings.threshold_rules)
    except ThresholdError as exc:
        raise SettingsError(f"bad threshold ({exc}): fix --lp-thresholds/--lp-threshold (syntax: docs/reports.md)") from None


def start_monitor(environment: Environment, rules: list[Rule]) -> gevent.Greenlet | None:
    """Abort-on-fail: a greenlet that stops the run when a marked rule breaks after its grace period."""
    monitor = ThresholdMonitor(rules)
    if not monitor.active:
        return None

    def watch() -> None:
        state = state_of(environment)
        while True:
            gevent.sleep(CHECK_INTERVAL_S)
            elapsed = time.time() - (state.started_at or time.time())
            decision = monitor.check(current_summary(environment), elapsed)
            if decision.abort:
                log.error("threshold broken, aborting the run: %s", decision.reason)
                state.end_reason = "threshold abort"
                environment.runner.quit()
                return

    return gevent.spawn(watch)


def verdict(summary: dict[str, Any], rules: list[Rule], *, final: bool) -> ThresholdReport | None:
    """Evaluate the rules against the summary and put the section in it; None when no rule is set."""
    if not rules:
        return None
    report = evaluate(rules, summary, final=final)
    summary["thresholds"] = report.to_section()
    return report


def set_exit_code(environment: Environment, summary: dict[str, Any], has_rules: bool) -> None:
    """The run's exit code (docs/reports.md, "Exit codes"): a lost worker (7) and an outside stop (6)
    come before the thresholds (0 or 3); without rules, Locust's own rule stands (0 or 1)."""
    settings = state_of(environment).settings
    code = exitcodes.run_exit_code(summary, stop_is_success=bool(settings and settings.stop_is_success))
    if has_rules or code not in (exitcodes.OK, exitcodes.FAILURES):
        environment.process_exit_code = code
