"""Rules against a summary: each rule's value, its limit, and pass / fail / no data.

Pure functions over summary dicts, so the same code gives the end-of-run verdict, the checks
while a run goes on (:mod:`.monitor`), and trend's chart values (:func:`metric_value`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from harness.reports import histogram as H
from harness.reports import loghist
from harness.reports.percentiles import MS_KEYS
from harness.reports.thresholds.grammar import LATENCY_SCOPES
from harness.reports.thresholds.model import Rule, RuleResult, ThresholdError, ThresholdReport

OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# summary keys that hold stored percentiles (anything else is computed from histogram_ms)
STORED_PERCENTILES: Final = {q: key for key, q in MS_KEYS}
# the steps whose latency the ``pings`` and ``messages`` scopes test: pong round trip, publish to reply
SCOPE_STEPS: Final = {"pings": "ping", "messages": "message-round-trip"}


def evaluate(rules: Sequence[Rule], summary: Mapping[str, Any], *, final: bool = True) -> ThresholdReport:
    """Every rule against ``summary``. ``final=False`` (a run still going) makes 'no data' a pass."""
    report = ThresholdReport()
    steps = summary.get("steps") or {}
    for rule in rules:
        if rule.scope == "step" and rule.target == "*":
            names = list(steps)
            if not names:
                report.results.append(_result(rule, summary, final))
            for name in names:
                res = _result(rule.for_step(name), summary, final)
                res.source = rule.name
                report.results.append(res)
        else:
            report.results.append(_result(rule, summary, final))
    return report


def _result(rule: Rule, summary: Mapping[str, Any], final: bool) -> RuleResult:
    value, path = metric_value(rule, summary)
    limit = rule.limit
    if rule.limit_field is not None:
        base = (summary.get("run") or {}).get(rule.limit_field)
        limit = None if not isinstance(base, (int, float)) else rule.limit * float(base)
    if value is None or limit is None or (isinstance(value, float) and math.isnan(value)):
        return RuleResult(rule, value, limit, "no data" if final else "pass", path)
    ok = OPS[rule.op](value, limit)
    return RuleResult(rule, value, limit, "pass" if ok else "fail", path)


def metric_value(rule: Rule, summary: Mapping[str, Any]) -> tuple[float | None, str]:
    """The value a rule tests, and its path in summary.json (for messages and the ``metric`` field)."""
    scope, metric = rule.scope, rule.metric
    if scope in LATENCY_SCOPES and (rule.quantile is not None or metric in ("mean", "min", "max")):
        name = rule.target if scope == "step" else SCOPE_STEPS[scope]
        step = (summary.get("steps") or {}).get(name)
        return _latency(step, rule, f"steps.{name}")
    if scope == "step":
        step = (summary.get("steps") or {}).get(rule.target)
        path = f"steps.{rule.target}.{metric}"
        if not step:
            return None, path
        return _num(step.get(metric)), path
    if scope == "phase":
        phase = (summary.get("phases") or {}).get(rule.target)
        base = f"phases.{rule.target}"
        if not phase:
            return None, f"{base}.{metric}"
        if metric in ("category", "category_ratio"):
            count = float((phase.get("categories") or {}).get(rule.key, 0))
            if metric == "category":
                return count, f"{base}.categories[{rule.key!r}]"
            sessions = phase.get("sessions") or 0
            return (count / sessions if sessions else 0.0), f"{base}.categories[{rule.key!r}] / sessions"
        return _num(phase.get(metric)), f"{base}.{metric}"
    if scope == "sockets":
        sockets = summary.get("sockets")
        if not sockets:
            return None, f"sockets.{metric}"
        if metric == "server_closes":
            closes = sockets.get("server_closes") or {}
            if rule.key is not None:
                return float(closes.get(rule.key, 0)), f"sockets.server_closes[{rule.key!r}]"
            return float(sum(closes.values())), "sockets.server_closes (total)"
        if metric == "drop_ratio":
            opened = sockets.get("opened") or 0
            return ((sockets.get("drops") or 0) / opened if opened else 0.0), "sockets.drops / opened"
        return _num(sockets.get(metric)), f"sockets.{metric}"
    if scope == "pings":
        pings = summary.get("pings")
        if not pings:
            return None, f"pings.{metric}"
        if metric == "timeout_ratio":
            sent = pings.get("sent") or 0
            return ((pings.get("timeouts") or 0) / sent if sent else 0.0), "pings.timeouts / sent"
        return _num(pings.get(metric)), f"pings.{metric}"
    if scope == "messages":
        return _messages_metric(summary, metric)
    if scope == "load_generator":
        return _generator_metric(summary, metric)
    if scope == "arrival":
        return _arrival_metric(summary, metric)
    return run_metric(summary, metric)


_GENERATOR_FIELDS: Final = {
    "loop_lag_mean": "loop_lag_mean_ms",
    "loop_lag_p99": "loop_lag_p99_ms",
    "loop_lag_max": "loop_lag_max_ms",
    "cpu_max": "cpu_percent_max",
    "loop_busy_max": "loop_busy_percent_max",
    "gc_pause_max": "gc_pause_max_ms",
}


def _generator_metric(summary: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """The generator's health over the run: the share saturated, and the worst process's loop lag and CPU."""
    generator = summary.get("load_generator")
    if not generator:
        return None, f"load_generator.{metric}"
    if metric in ("saturated_share", "saturated_s"):
        return _num(generator.get(metric)), f"load_generator.{metric}"
    name = _GENERATOR_FIELDS[metric]
    rows = [r.get(name) for r in generator.get("processes") or [] if r.get(name) is not None]
    return (float(max(rows)) if rows else None), f"load_generator.processes[*].{name} (the worst)"


# the arrival scope's shares: (numerator, denominator) fields of the section
_ARRIVAL_RATIOS: Final = {
    "dropped_ratio": ("dropped", "due"),
    "late_ratio": ("late", "started"),
    "achieved_ratio": ("achieved_rate", "target_rate"),
}


def _arrival_metric(summary: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """The open model's rate kept or not (``arrival: dropped_ratio < 1%``); no data for a closed-model run."""
    arrival = summary.get("arrival")
    if not arrival:
        return None, f"arrival.{metric}"
    if metric in _ARRIVAL_RATIOS:
        top, bottom = _ARRIVAL_RATIOS[metric]
        num, den = _num(arrival.get(top)), _num(arrival.get(bottom))
        path = f"arrival.{top} / {bottom}"
        if metric == "achieved_ratio":  # no rate yet (a run too short to have one): no data, not 0
            return (num / den if num is not None and den else None), path
        return ((num or 0.0) / den if den else 0.0), path  # nothing due: nothing dropped
    field = "late_max_ms" if metric == "late_max" else metric
    return _num(arrival.get(field)), f"arrival.{field}"


def _messages_metric(summary: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """The conversation traffic (``--lp-messages``): no data for a run whose sessions did not talk."""
    messages = summary.get("messages")
    if not messages or not messages.get("sent"):
        return None, f"messages.{metric}"
    sent = messages["sent"]
    if metric == "lost_ratio":
        return (messages.get("lost") or 0) / sent, "messages.lost / sent"
    if metric == "reply_ratio":
        return (messages.get("replied") or 0) / sent, "messages.replied / sent"
    if metric == "sent_per_s":
        duration = _num((summary.get("run") or {}).get("duration_s"))
        return (sent / duration if duration else None), "messages.sent / run.duration_s"
    return _num(messages.get(metric)), f"messages.{metric}"


def run_metric(summary: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """Whole-run figures: request steps are those whose phase is not 'session' (derived measures)."""
    run = summary.get("run") or {}
    request_steps = [s for s in (summary.get("steps") or {}).values() if s.get("phase") != "session"]
    if metric == "rps":
        return float(sum(s.get("rps") or 0.0 for s in request_steps)), "sum of steps.*.rps (request steps)"
    if metric == "requests":
        return float(sum(s.get("count") or 0 for s in request_steps)), "sum of steps.*.count (request steps)"
    if metric == "failures":
        return float(sum(s.get("failures") or 0 for s in request_steps)), "sum of steps.*.failures (request steps)"
    if metric == "fail_ratio":
        count = sum(s.get("count") or 0 for s in request_steps)
        fails = sum(s.get("failures") or 0 for s in request_steps)
        return (fails / count if count else 0.0), "failures / requests (request steps)"
    if metric == "duration":
        return _num(run.get("duration_s")), "run.duration_s"
    if metric == "users":
        return _num(run.get("users")), "run.users"
    token = (summary.get("phases") or {}).get("token") or {}
    if metric == "sessions":
        return _num(token.get("sessions")), "phases.token.sessions"
    if metric == "sessions_per_s":
        duration = run.get("duration_s")
        sessions = token.get("sessions")
        if not duration or sessions is None:
            return None, "phases.token.sessions / run.duration_s"
        return sessions / duration, "phases.token.sessions / run.duration_s"
    raise ThresholdError(f"unknown run metric {metric!r}")  # pragma: no cover - parse_rule rejects it


def _latency(step: Mapping[str, Any] | None, rule: Rule, base: str) -> tuple[float | None, str]:
    if rule.quantile is not None:
        stored = STORED_PERCENTILES.get(round(rule.quantile, 6))
        precise = bool(step and step.get("histogram_log"))  # within 1 %; older summaries: Locust's buckets
        source = "histogram_log" if precise else "histogram_ms"
        path = f"{base}.{stored}" if stored else f"{base}.{source} -> {rule.metric}"
        if not step or not step.get("count"):
            return None, path
        if stored and step.get(stored) is not None:
            return float(step[stored]), path
        if precise:
            exact = loghist.normalize(step["histogram_log"])
            return loghist.percentile(exact, rule.quantile, _num(step.get("min_ms")), _num(step.get("max_ms"))), path
        hist = H.normalize(step.get("histogram_ms"))
        n = H.total(hist)
        return (float(H.percentile(hist, n, rule.quantile)) if n else None), path
    key = f"{rule.metric}_ms"
    if not step or not step.get("count"):
        return None, f"{base}.{key}"
    return _num(step.get(key)), f"{base}.{key}"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
