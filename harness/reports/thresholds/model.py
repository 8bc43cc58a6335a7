"""What a threshold is and what checking one gives: rules, results, the report, and how values print.

Shared by the grammar (which makes rules), the evaluation (which makes results) and the outputs,
so none of them needs another's internals.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from harness.reports.loading import ReportError


class ThresholdError(ReportError):
    """A rule or thresholds file that cannot be understood; the message quotes it (exit code 2)."""


# metric kinds decide the units a limit may carry and how values print
MS, SECONDS, RATIO, NUMBER = "ms", "s", "ratio", "number"


def key_text(key: str | None) -> str:
    """The ``['key']`` suffix of a keyed metric as a rule writes it (empty without a key)."""
    return "" if key is None else f"[{key!r}]"


@dataclass(frozen=True)
class Rule:
    """One threshold: ``scope_key: expression`` plus k6's abort options."""

    scope: str  # step | phase | sockets | pings | messages | load_generator | arrival | run
    target: str | None  # the step or phase name ("*": every step); None for the other scopes
    metric: str  # canonical: p95, p99.9, mean, min, max, fail_ratio, category, ...
    key: str | None  # category / close code for keyed metrics
    quantile: float | None  # for percentile metrics
    op: str
    limit: float | None  # a number (in the metric's unit), or the factor of limit_field
    limit_field: str | None  # a run field (users, ...) the limit refers to
    kind: str  # ms | s | ratio | number
    expression: str  # as written, e.g. "p95 < 200"
    abort_on_fail: bool = False
    delay_abort_eval_s: float = 0.0

    @property
    def scope_key(self) -> str:
        if self.scope == "step":
            return self.target or "*"
        if self.scope == "phase":
            return f"phase:{self.target}"
        return self.scope

    @property
    def name(self) -> str:
        """The rule as a user writes it on the command line: ``authenticate: p95 < 200``."""
        return f"{self.scope_key}: {self.expression}"

    @property
    def metric_name(self) -> str:
        """The metric with its key, as rules and charts name it: ``p95``, ``category['close 4401']``."""
        return f"{self.metric}{key_text(self.key)}"

    def for_step(self, step: str) -> Rule:
        """This rule for one step (how a ``*`` rule expands)."""
        return dataclasses.replace(self, target=step)


def format_value(value: float | None, kind: str) -> str:
    """A value in its metric's unit for messages and tables; ``-`` when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == MS:
        return f"{value:g} ms"
    if kind == SECONDS:
        return f"{value:g} s"
    if kind == RATIO:
        return f"{value:.4g} ({value * 100:.3g}%)"
    return f"{value:g}"


@dataclass
class RuleResult:
    rule: Rule
    value: float | None
    limit: float | None
    status: str  # pass | fail | no data
    metric: str  # where the value came from, a path into summary.json
    source: str | None = None  # the wildcard rule this one was expanded from

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    @property
    def message(self) -> str:
        r = self.rule
        if self.status == "no data":
            if self.limit is None and r.limit_field:
                return f"no value for run.{r.limit_field} in the summary"
            return f"no data for {self.metric}"
        value, limit = format_value(self.value, r.kind), format_value(self.limit, r.kind)
        verdict = "holds" if self.ok else "breaks"
        return f"{r.metric_name} = {value}, limit {r.op} {limit}: {verdict}"

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``summary.json``'s ``thresholds.rules``."""
        r = self.rule
        return {
            "rule": r.name,
            "metric": self.metric,
            "value": _json_number(self.value),
            "limit": _json_number(self.limit),
            "op": r.op,
            "ok": self.ok,
            "status": self.status,
            "abort_on_fail": r.abort_on_fail,
            "delay_abort_eval_s": r.delay_abort_eval_s,
            "source": self.source,
            "message": self.message,
        }


@dataclass
class ThresholdReport:
    results: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.ok]

    def to_section(self) -> dict[str, Any] | None:
        """The ``thresholds`` section of summary.json (None when no rule was set)."""
        if not self.results:
            return None
        return {"passed": self.passed, "rules": [r.to_dict() for r in self.results]}


def _json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such values are written as null."""
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return None
    return value
