"""Thresholds (SLOs): k6-style rules over a summary, their results, JUnit XML and a terminal table.

A rule is ``SCOPE: METRIC OP VALUE`` -- in a TOML file ``"authenticate" = ["p95 < 200"]``, on the
command line ``--threshold 'authenticate:p95<200'``. Scopes: a step name (or ``step:NAME``, or
``*`` for every step), ``phase:token``/``phase:socket``, ``sockets``, ``pings`` and ``run``. The
grammar, the metrics of each scope and the abort options are documented in docs/reports.md.

Pure functions over summary dicts: the Locust side builds the summary (final or partial) and hands it
here, both for the end-of-run verdict and for abort-on-fail checks while the run goes on.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from xml.etree import ElementTree as ET

from harness.reports import histogram as H
from harness.reports.loading import ReportError


class ThresholdError(ReportError):
    """A rule or thresholds file that cannot be understood; the message quotes it (exit code 2)."""


OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# summary keys that hold stored percentiles (anything else is computed from histogram_ms)
STORED_PERCENTILES: Final = {0.5: "p50_ms", 0.9: "p90_ms", 0.95: "p95_ms", 0.99: "p99_ms", 0.999: "p99_9_ms"}
RUN_FIELDS: Final = ("users", "spawn_rate", "duration_s", "processes")  # allowed on the right-hand side

# metric kinds decide the units a limit may carry and how values print
MS, SECONDS, RATIO, NUMBER = "ms", "s", "ratio", "number"

_LATENCY_ALIASES: Final = {"mean": "mean", "avg": "mean", "min": "min", "max": "max", "med": "p50", "median": "p50"}
_RATIO_ALIASES: Final = {
    "fail_ratio": "fail_ratio",
    "rate": "fail_ratio",
    "error_rate": "fail_ratio",
    "failure_rate": "fail_ratio",
}
SCOPE_METRICS: Final[dict[str, dict[str, str]]] = {
    "step": {"count": NUMBER, "failures": NUMBER, "fail_ratio": RATIO, "rps": NUMBER},
    "phase": {"sessions": NUMBER, "failures": NUMBER, "fail_ratio": RATIO, "category": NUMBER, "category_ratio": RATIO},
    "sockets": {
        "open": NUMBER,
        "peak_open": NUMBER,
        "opened": NUMBER,
        "drops": NUMBER,
        "drops_per_hour": NUMBER,
        "server_closes": NUMBER,
        "drop_ratio": RATIO,
    },
    "pings": {"sent": NUMBER, "answered": NUMBER, "timeouts": NUMBER, "timeout_ratio": RATIO},
    "run": {
        "rps": NUMBER,
        "requests": NUMBER,
        "failures": NUMBER,
        "fail_ratio": RATIO,
        "duration": SECONDS,
        "users": NUMBER,
        "sessions": NUMBER,
        "sessions_per_s": NUMBER,
    },
}
KEYED_METRICS: Final = {"category", "category_ratio", "server_closes"}  # may take ['key']; category* must
LATENCY_SCOPES: Final = {"step", "pings"}  # pNN / mean / min / max (pings: the 'ping' step, i.e. pong RTT)
PING_STEP: Final = "ping"

_EXPR = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[0-9]+)?)\s*
        (?:\(\s*(?P<arg>[0-9]+(?:\.[0-9]+)?)\s*\))?\s*
        (?:\[\s*(?:'(?P<k1>[^']*)'|"(?P<k2>[^"]*)"|(?P<k3>[A-Za-z0-9 _.-]+?))\s*\])?\s*
        (?P<op><=|>=|==|!=|<|>)\s*(?P<rhs>.+?)\s*$""",
    re.VERBOSE,
)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RHS_NUMBER = re.compile(rf"^(?P<num>{_NUM})\s*(?P<unit>ms|s|m|h|%)?$")
_RHS_FIELD = re.compile(rf"^(?:(?P<f1>{_NUM})\s*\*\s*)?(?P<field>[A-Za-z_]+)(?:\s*\*\s*(?P<f2>{_NUM}))?$")
_PERCENTILE = re.compile(r"^p(?:_|)(?P<int>\d+)(?:[._](?P<frac>\d+))?$")
_DURATION = re.compile(rf"^\s*(?P<num>{_NUM})\s*(?P<unit>ms|s|m|h)?\s*$")
_UNIT_MS: Final = {"ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


@dataclass(frozen=True)
class Rule:
    """One threshold: ``scope_key: expression`` plus k6's abort options."""

    scope: str  # step | phase | sockets | pings | run
    target: str | None  # the step or phase name ("*": every step); None for sockets/pings/run
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

    def for_step(self, step: str) -> Rule:
        return Rule(**{**self.__dict__, "target": step})


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
        return f"{r.metric}{_key(r)} = {value}, limit {r.op} {limit}: {verdict}"

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


# ------------------------------------------------------------------------------------------- parsing


def parse_scope(key: str) -> tuple[str, str | None]:
    """``authenticate`` / ``step:authenticate`` / ``*`` / ``phase:socket`` / ``sockets`` / ``pings`` / ``run``."""
    k = key.strip()
    if not k:
        raise ThresholdError("empty threshold scope (use a step name, phase:NAME, sockets, pings or run)")
    if k in ("sockets", "pings", "run"):
        return k, None
    if k.startswith("phase:"):
        name = k[len("phase:") :].strip()
        if not name:
            raise ThresholdError(f"{key!r}: phase:NAME needs a phase name (token or socket)")
        return "phase", name
    if k.startswith("step:"):
        k = k[len("step:") :].strip()
    if k in ("*", "steps", "step"):
        return "step", "*"
    return "step", k


def parse_rule(scope_key: str, expression: str, *, abort_on_fail: bool = False, delay_abort_eval: Any = 0.0) -> Rule:
    """One rule from its scope and expression; ThresholdError quoting the rule when it cannot be read."""
    scope, target = parse_scope(scope_key)
    where = f"threshold {scope_key!r}: {expression!r}"
    m = _EXPR.match(expression)
    if not m:
        raise ThresholdError(f"{where}: expected 'METRIC OP VALUE', e.g. 'p95 < 200' (ops: < <= > >= == !=)")
    raw_name, arg = m.group("name"), m.group("arg")
    key = next((m.group(g) for g in ("k1", "k2", "k3") if m.group(g) is not None), None)
    metric, quantile, kind = _metric(scope, raw_name, arg, key, where)
    limit, limit_field, rhs_kind = _rhs(m.group("rhs"), kind, where)
    delay = parse_duration_s(delay_abort_eval, where)
    canonical = f"{raw_name}{f'({arg})' if arg else ''}{_key_text(key)} {m.group('op')} {m.group('rhs').strip()}"
    return Rule(
        scope=scope,
        target=target,
        metric=metric,
        key=key,
        quantile=quantile,
        op=m.group("op"),
        limit=limit,
        limit_field=limit_field,
        kind=rhs_kind,
        expression=canonical,
        abort_on_fail=bool(abort_on_fail),
        delay_abort_eval_s=delay,
    )


def _metric(scope: str, name: str, arg: str | None, key: str | None, where: str) -> tuple[str, float | None, str]:
    lname = name.lower()
    if scope in LATENCY_SCOPES:
        q = None
        if lname == "p" and arg is not None:
            q = round(float(arg) / 100.0, 9)
        else:
            pm = _PERCENTILE.match(lname)
            if pm and arg is None:
                q = round(float(f"{pm.group('int')}.{pm.group('frac') or 0}") / 100.0, 9)
        if q is not None:
            if not 0.0 < q <= 1.0:
                raise ThresholdError(f"{where}: percentile must be in (0, 100]")
            if key is not None:
                raise ThresholdError(f"{where}: a percentile takes no ['key']")
            label = f"p{_pct_text(q)}"
            return label, q, MS
        if lname in _LATENCY_ALIASES:
            canonical = _LATENCY_ALIASES[lname]
            if canonical == "p50":
                return "p50", 0.5, MS
            return canonical, None, MS
    if scope in ("step", "phase", "run"):
        lname = _RATIO_ALIASES.get(lname, lname)
    known = SCOPE_METRICS[scope]
    if lname not in known:
        names = sorted(known) + (["pNN", "p(NN.N)", "mean", "min", "max"] if scope in LATENCY_SCOPES else [])
        raise ThresholdError(f"{where}: unknown metric {name!r} for {scope} (known: {', '.join(names)})")
    if key is not None and lname not in KEYED_METRICS:
        raise ThresholdError(f"{where}: {name} takes no ['key']")
    if key is None and lname in ("category", "category_ratio"):
        raise ThresholdError(f"{where}: {name} needs a category, e.g. {name}['close 4401']")
    if arg is not None:
        raise ThresholdError(f"{where}: {name} takes no (argument)")
    return lname, None, known[lname]


def _rhs(text: str, kind: str, where: str) -> tuple[float, str | None, str]:
    t = text.strip()
    m = _RHS_NUMBER.match(t)
    if m:
        value, unit = float(m.group("num")), m.group("unit")
        if unit is None:
            return value, None, kind
        if unit == "%":
            if kind != RATIO:
                raise ThresholdError(f"{where}: '%' only applies to ratios (fail_ratio, ...)")
            return value / 100.0, None, kind
        if kind == MS:
            return value * _UNIT_MS[unit], None, kind
        if kind == SECONDS:
            return value * _UNIT_MS[unit] / 1000.0, None, kind
        raise ThresholdError(f"{where}: unit {unit!r} does not apply to this metric (it is a {kind})")
    m = _RHS_FIELD.match(t)
    if m and (m.group("f1") is None or m.group("f2") is None):
        fld = m.group("field")
        if fld == "duration":
            fld = "duration_s"
        if fld not in RUN_FIELDS:
            raise ThresholdError(f"{where}: the limit may name a run field ({', '.join(RUN_FIELDS)}), not {fld!r}")
        factor = float(m.group("f1") or m.group("f2") or 1.0)
        return factor, fld, kind
    raise ThresholdError(f"{where}: limit {t!r} is not a number (with optional unit ms/s/m/h or %) or a run field")


def parse_duration_s(value: Any, where: str = "delayAbortEval") -> float:
    """``30`` / ``"30s"`` / ``"1m"`` / ``"500ms"`` -> seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise ThresholdError(f"{where}: delayAbortEval must be a duration such as '30s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ThresholdError(f"{where}: delayAbortEval {value!r} is not a duration such as '30s', '1m', '500ms'")
        seconds = float(m.group("num")) * _UNIT_MS[m.group("unit") or "s"] / 1000.0
    if seconds < 0 or math.isnan(seconds):
        raise ThresholdError(f"{where}: delayAbortEval must not be negative")
    return seconds


_ABORT_KEYS: Final = ("abortOnFail", "abort_on_fail", "abort-on-fail")
_DELAY_KEYS: Final = ("delayAbortEval", "delay_abort_eval", "delay-abort-eval")


def rules_from_mapping(table: Mapping[str, Any], where: str = "thresholds") -> list[Rule]:
    """Rules from the ``[thresholds]`` table: scope -> a rule string, or a list of strings / k6 objects."""
    if not isinstance(table, Mapping):
        raise ThresholdError(f"{where}: [thresholds] must be a table of scope = [rules]")
    rules: list[Rule] = []
    for scope_key, entries in table.items():
        items = entries if isinstance(entries, list) else [entries]
        for item in items:
            if isinstance(item, str):
                rules.append(parse_rule(scope_key, item))
            elif isinstance(item, Mapping):
                expr = item.get("threshold")
                unknown = set(item) - {"threshold", *_ABORT_KEYS, *_DELAY_KEYS}
                if not isinstance(expr, str) or unknown:
                    raise ThresholdError(
                        f"{where}: {scope_key!r}: a rule object is {{threshold = '...', abortOnFail = true, "
                        f"delayAbortEval = '30s'}}" + (f"; unknown keys {sorted(unknown)}" if unknown else "")
                    )
                abort = next((item[k] for k in _ABORT_KEYS if k in item), False)
                if not isinstance(abort, bool):
                    raise ThresholdError(f"{where}: {scope_key!r}: abortOnFail must be true or false")
                delay = next((item[k] for k in _DELAY_KEYS if k in item), 0.0)
                rules.append(parse_rule(scope_key, expr, abort_on_fail=abort, delay_abort_eval=delay))
            else:
                raise ThresholdError(f"{where}: {scope_key!r}: each rule is a string or a {{threshold = ...}} table")
    return rules


def load_thresholds_file(path: str | Path) -> list[Rule]:
    """Rules from a TOML file with a ``[thresholds]`` table (or the same shape in JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdError(f"thresholds file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else load_toml(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ThresholdError(f"thresholds file {path}: {exc}") from None
    if "thresholds" not in data:
        raise ThresholdError(f"thresholds file {path}: no [thresholds] table")
    return rules_from_mapping(data["thresholds"], where=str(path))


def load_toml(text: str) -> dict[str, Any]:
    """tomllib on 3.11+, tomli where installed, else the small subset parser in tomlmini."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    try:  # pragma: no cover - depends on the interpreter
        import tomli  # type: ignore[import-not-found]

        return tomli.loads(text)
    except ImportError:  # pragma: no cover
        from harness.reports.tomlmini import loads

        return loads(text)


def parse_cli_rule(text: str) -> Rule:
    """``--threshold 'authenticate:p95<200'``; options after ';': ``...;abortOnFail;delayAbortEval=30s``."""
    head, *options = [part.strip() for part in text.split(";")]
    scope_key, expr = _split_cli(head, text)
    abort, delay = False, 0.0
    for opt in options:
        name, _, value = opt.partition("=")
        name = name.strip()
        if name in _ABORT_KEYS:
            abort = value.strip().lower() not in ("false", "0", "no") if value else True
        elif name in _DELAY_KEYS:
            delay = parse_duration_s(value.strip(), f"threshold {text!r}")
        elif name:
            raise ThresholdError(f"threshold {text!r}: unknown option {name!r} (abortOnFail, delayAbortEval=30s)")
    return parse_rule(scope_key, expr, abort_on_fail=abort, delay_abort_eval=delay)


def _split_cli(head: str, text: str) -> tuple[str, str]:
    for prefix in ("phase:", "step:"):
        if head.startswith(prefix):
            name, sep, expr = head[len(prefix) :].partition(":")
            if not sep:
                break
            return prefix + name, expr
    else:
        scope, sep, expr = head.partition(":")
        if sep:
            return scope, expr
    raise ThresholdError(f"threshold {text!r}: expected SCOPE:EXPRESSION, e.g. 'authenticate:p95<200'")


def load_rules(files: Iterable[str | Path] = (), cli: Iterable[str] = ()) -> list[Rule]:
    """All rules of a run: every file's, then every ``--threshold``'s, in order."""
    rules: list[Rule] = []
    for f in files:
        rules.extend(load_thresholds_file(f))
    for c in cli:
        rules.append(parse_cli_rule(c))
    return rules


# ---------------------------------------------------------------------------------------- evaluation


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
        name = rule.target if scope == "step" else PING_STEP
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
    return run_metric(summary, metric)


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
        path = f"{base}.{stored}" if stored else f"{base}.histogram_ms -> {rule.metric}"
        if not step or not step.get("count"):
            return None, path
        if stored and step.get(stored) is not None:
            return float(step[stored]), path
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


# -------------------------------------------------------------------------------- during a run (abort)


@dataclass
class AbortDecision:
    abort: bool
    broken: list[RuleResult]

    @property
    def reason(self) -> str:
        return "; ".join(f"{r.rule.name} ({r.message})" for r in self.broken)


class ThresholdMonitor:
    """Abort-on-fail while a run goes on (k6's ``abortOnFail``/``delayAbortEval``).

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


# ----------------------------------------------------------------------------------------- rendering


def format_value(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == MS:
        return f"{value:g} ms"
    if kind == SECONDS:
        return f"{value:g} s"
    if kind == RATIO:
        return f"{value:.4g} ({value * 100:.3g}%)"
    return f"{value:g}"


def terminal_table(report: ThresholdReport) -> str:
    """A table for the end of a run: one line per rule, failures first marked."""
    if not report.results:
        return "thresholds: none set"
    rows = [("", "rule", "value", "limit", "")]
    for r in report.results:
        mark = {"pass": "ok", "fail": "FAIL", "no data": "NO DATA"}[r.status]
        flags = "abortOnFail" + (f" after {r.rule.delay_abort_eval_s:g}s" if r.rule.delay_abort_eval_s else "")
        rows.append(
            (
                mark,
                r.rule.name,
                format_value(r.value, r.rule.kind),
                f"{r.rule.op} {format_value(r.limit, r.rule.kind)}",
                flags if r.rule.abort_on_fail else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    failed = len(report.failed)
    lines.append(
        f"thresholds: {len(report.results) - failed}/{len(report.results)} passed"
        + ("" if report.passed else f", {failed} FAILED")
    )
    return "\n".join(lines)


def junit_xml(report: ThresholdReport, *, run_id: str | None = None, suite: str = "lp-harness thresholds") -> str:
    """JUnit XML: one <testcase> per rule, a <failure> with value vs limit for each broken rule."""
    failures = len(report.failed)
    suites = ET.Element("testsuites", name=suite, tests=str(len(report.results)), failures=str(failures), errors="0")
    ts = ET.SubElement(
        suites,
        "testsuite",
        name=suite,
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
    )
    if run_id:
        props = ET.SubElement(ts, "properties")
        ET.SubElement(props, "property", name="run_id", value=run_id)
    for r in report.results:
        case = ET.SubElement(
            ts, "testcase", classname=f"lp-harness.thresholds.{r.rule.scope_key}", name=r.rule.name, time="0"
        )
        if not r.ok:
            fail = ET.SubElement(
                case, "failure", message=r.message, type="no data" if r.status == "no data" else "threshold"
            )
            fail.text = (
                f"rule: {r.rule.name}\nmetric: {r.metric}\nvalue: {format_value(r.value, r.rule.kind)}\n"
                f"limit: {r.rule.op} {format_value(r.limit, r.rule.kind)}\n"
            )
        else:
            out = ET.SubElement(case, "system-out")
            out.text = r.message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _json_number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return None
    return value


def _pct_text(q: float) -> str:
    return f"{q * 100:.6g}"


def _key_text(key: str | None) -> str:
    return "" if key is None else f"[{key!r}]"


def _key(rule: Rule) -> str:
    return _key_text(rule.key)


def parse_metric_ref(text: str, default_scope: str | None = None) -> Rule:
    """``authenticate:p95`` / ``phase:socket:fail_ratio`` / ``run:rps`` (or just ``p99`` with a default scope).

    The metric half of a rule, for tools that chart a metric (trend) rather than test it.
    """
    t = text.strip()
    try:
        scope_key, metric = _split_cli(t, t)
    except ThresholdError:
        if default_scope is None:
            raise ThresholdError(f"metric {text!r}: expected SCOPE:METRIC, e.g. 'authenticate:p95'") from None
        scope_key, metric = default_scope, t
    if default_scope is not None and not _looks_like_scope(scope_key):
        scope_key, metric = default_scope, t  # e.g. "category['x:y']" is a metric, not a scope
    return parse_rule(scope_key, f"{metric.strip()} >= 0")


def _looks_like_scope(key: str) -> bool:
    return bool(re.fullmatch(r"(?:phase:|step:)?[A-Za-z0-9_.*-]+", key.strip()))
