"""Thresholds (SLOs): k6-style rules over a summary, their results, JUnit XML and a terminal table.

A rule is ``SCOPE: METRIC OP VALUE`` -- in a TOML file ``"authenticate" = ["p95 < 200"]``, on the
command line ``--threshold 'authenticate:p95<200'``. Scopes: a step name (or ``step:NAME``, or
``*`` for every step), ``phase:token``/``phase:socket``, ``sockets``, ``pings``, ``messages``,
``load_generator``, ``arrival`` and ``run``. The grammar, the metrics of each scope and the abort
options are documented in docs/reports.md.

Pure functions over summary dicts: the Locust side builds the summary (final or partial) and hands it
here, both for the end-of-run verdict and for abort-on-fail checks while the run goes on.

One job per module: :mod:`.model` (rules, results), :mod:`.grammar` (rule text),
:mod:`.rulefiles` (TOML/JSON tables, ``--threshold``), :mod:`.evaluate`, :mod:`.monitor`
(abort on fail), :mod:`.output` (terminal, JUnit). Import from here.
"""

from harness.reports.thresholds.evaluate import OPS, SCOPE_STEPS, STORED_PERCENTILES, evaluate, metric_value, run_metric
from harness.reports.thresholds.grammar import (
    KEYED_METRICS,
    LATENCY_SCOPES,
    RUN_FIELDS,
    SCOPE_METRICS,
    parse_cli_rule,
    parse_duration_s,
    parse_metric_ref,
    parse_rule,
    parse_scope,
)
from harness.reports.thresholds.model import (
    MS,
    NUMBER,
    RATIO,
    SECONDS,
    Rule,
    RuleResult,
    ThresholdError,
    ThresholdReport,
    format_value,
    key_text,
)
from harness.reports.thresholds.monitor import AbortDecision, ThresholdMonitor
from harness.reports.thresholds.output import junit_xml, terminal_table
from harness.reports.thresholds.rulefiles import load_rules, load_thresholds_file, rules_from_mapping

__all__ = [
    "KEYED_METRICS",
    "LATENCY_SCOPES",
    "MS",
    "NUMBER",
    "OPS",
    "SCOPE_STEPS",
    "RATIO",
    "RUN_FIELDS",
    "SCOPE_METRICS",
    "SECONDS",
    "STORED_PERCENTILES",
    "AbortDecision",
    "Rule",
    "RuleResult",
    "ThresholdError",
    "ThresholdMonitor",
    "ThresholdReport",
    "evaluate",
    "format_value",
    "junit_xml",
    "key_text",
    "load_rules",
    "load_thresholds_file",
    "metric_value",
    "parse_cli_rule",
    "parse_duration_s",
    "parse_metric_ref",
    "parse_rule",
    "parse_scope",
    "rules_from_mapping",
    "run_metric",
    "terminal_table",
]
