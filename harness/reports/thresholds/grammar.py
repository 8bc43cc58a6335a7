"""The language of a rule: ``SCOPE: METRIC OP VALUE``, its units, and k6's abort options.

Turns text (a TOML entry, a ``--threshold`` argument, a trend chart's metric) into a :class:`Rule`
or a :class:`ThresholdError` that quotes the text and says what is wrong, so a typo in an SLO
stops a run before it starts rather than passing silently. docs/reports.md documents it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from harness.reports.percentiles import display
from harness.reports.thresholds.model import MS, NUMBER, RATIO, SECONDS, Rule, ThresholdError, key_text

RUN_FIELDS: Final = ("users", "spawn_rate", "duration_s", "processes")  # allowed on the right-hand side

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
    "messages": {
        "sent": NUMBER,
        "received": NUMBER,
        "replied": NUMBER,
        "lost": NUMBER,
        "lost_ratio": RATIO,
        "reply_ratio": RATIO,
        "sent_per_s": NUMBER,
    },
    "load_generator": {
        "saturated_share": RATIO,
        "saturated_s": SECONDS,
        "loop_lag_mean": MS,
        "loop_lag_p99": MS,
        "loop_lag_max": MS,
        "cpu_max": NUMBER,
        "loop_busy_max": NUMBER,
        "gc_pause_max": MS,
    },
    "arrival": {  # the open model (--lp-arrival-rate, docs/shapes.md)
        "target_rate": NUMBER,
        "achieved_rate": NUMBER,
        "achieved_ratio": RATIO,
        "due": NUMBER,
        "started": NUMBER,
        "dropped": NUMBER,
        "dropped_ratio": RATIO,
        "late": NUMBER,
        "late_ratio": RATIO,
        "late_max": MS,
        "max_concurrent": NUMBER,
    },
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
# pNN / mean / min / max; pings: the 'ping' step (pong RTT), messages: 'message-round-trip'
LATENCY_SCOPES: Final = {"step", "pings", "messages"}

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

ABORT_KEYS: Final = ("abortOnFail", "abort_on_fail", "abort-on-fail")
DELAY_KEYS: Final = ("delayAbortEval", "delay_abort_eval", "delay-abort-eval")


def parse_scope(key: str) -> tuple[str, str | None]:
    """``authenticate`` / ``step:authenticate`` / ``*`` / ``phase:socket`` / ``sockets`` / ``pings`` / ``messages`` /
    ``load_generator`` / ``arrival`` / ``run``."""
    k = key.strip()
    if not k:
        raise ThresholdError(
            "empty threshold scope (use a step name, phase:NAME, sockets, pings, messages, load_generator, arrival or run)"
        )
    if k in ("sockets", "pings", "messages", "load_generator", "arrival", "run"):
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
    canonical = f"{raw_name}{f'({arg})' if arg else ''}{key_text(key)} {m.group('op')} {m.group('rhs').strip()}"
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
            return display(q), q, MS
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


def parse_cli_rule(text: str) -> Rule:
    """``--threshold 'authenticate:p95<200'``; options after ';': ``...;abortOnFail;delayAbortEval=30s``."""
    head, *options = [part.strip() for part in text.split(";")]
    scope_key, expr = _split_cli(head, text)
    abort, delay = False, 0.0
    for opt in options:
        name, _, value = opt.partition("=")
        name = name.strip()
        if name in ABORT_KEYS:
            abort = value.strip().lower() not in ("false", "0", "no") if value else True
        elif name in DELAY_KEYS:
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
