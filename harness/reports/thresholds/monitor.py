"""Abort-on-fail while a run goes on (k6's ``abortOnFail`` and ``delayAbortEval``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.reports.thresholds.evaluate import evaluate
from harness.reports.thresholds.model import Rule, RuleResult


@dataclass
class AbortDecision:
    abort: bool
    broken: list[RuleResult]

    @property
    def reason(self) -> str:
        return "; ".join(f"{r.rule.name} ({r.message})" for r in self.broken)


class ThresholdMonitor:
    """Watches the abort-on-fail rules of a run against its partial summaries.

    Call :meth:`check` with the run's current (partial) summary as often as you like (e.g. every
    stats report). A rule marked abort-on-fail is evaluated only once the run has lasted its
    ``delayAbortEval`` (the grace period that lets samples accumulate); 'no data' never aborts.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = [r for r in rules if r.abort_on_fail]

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def check(self, summary: Mapping[str, Any], elapsed_s: float | None = None) -> AbortDecision:
        if elapsed_s is None:
            elapsed_s = float((summary.get("run") or {}).get("duration_s") or 0.0)
        due = [r for r in self.rules if elapsed_s >= r.delay_abort_eval_s]
        report = evaluate(due, summary, final=False)
        broken = [r for r in report.results if r.status == "fail"]
        return AbortDecision(bool(broken), broken)
