"""Where rules come from: a ``[thresholds]`` table in a TOML (or JSON) file, and ``--threshold`` arguments."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.reports import tomlfile
from harness.reports.thresholds.grammar import ABORT_KEYS, DELAY_KEYS, parse_cli_rule, parse_rule
from harness.reports.thresholds.model import Rule, ThresholdError


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
                rules.append(_rule_object(scope_key, item, where))
            else:
                raise ThresholdError(f"{where}: {scope_key!r}: each rule is a string or a {{threshold = ...}} table")
    return rules


def _rule_object(scope_key: str, item: Mapping[str, Any], where: str) -> Rule:
    """k6's object form: ``{threshold = '...', abortOnFail = true, delayAbortEval = '30s'}``."""
    expr = item.get("threshold")
    unknown = set(item) - {"threshold", *ABORT_KEYS, *DELAY_KEYS}
    if not isinstance(expr, str) or unknown:
        raise ThresholdError(
            f"{where}: {scope_key!r}: a rule object is {{threshold = '...', abortOnFail = true, "
            f"delayAbortEval = '30s'}}" + (f"; unknown keys {sorted(unknown)}" if unknown else "")
        )
    abort = next((item[k] for k in ABORT_KEYS if k in item), False)
    if not isinstance(abort, bool):
        raise ThresholdError(f"{where}: {scope_key!r}: abortOnFail must be true or false")
    delay = next((item[k] for k in DELAY_KEYS if k in item), 0.0)
    return parse_rule(scope_key, expr, abort_on_fail=abort, delay_abort_eval=delay)


def load_thresholds_file(path: str | Path) -> list[Rule]:
    """Rules from a TOML file with a ``[thresholds]`` table (or the same shape in JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdError(f"thresholds file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomlfile.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomlfile.TomlError both are
        raise ThresholdError(f"thresholds file {path}: {exc}") from None
    if "thresholds" not in data:
        raise ThresholdError(f"thresholds file {path}: no [thresholds] table")
    return rules_from_mapping(data["thresholds"], where=str(path))


def load_rules(files: Iterable[str | Path] = (), cli: Iterable[str] = ()) -> list[Rule]:
    """All rules of a run: every file's, then every ``--threshold``'s, in order."""
    rules: list[Rule] = []
    for f in files:
        rules.extend(load_thresholds_file(f))
    for c in cli:
        rules.append(parse_cli_rule(c))
    return rules
