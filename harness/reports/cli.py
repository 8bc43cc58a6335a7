"""Command lines of the reports wing: compare, trend, baseline promote, thresholds check, report.

Each ``main_*`` takes the arguments after the subcommand and returns an exit code from
:mod:`harness.reports.exitcodes`; ``register(subparsers)`` adds them all to a parent parser.
Errors the user can fix end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.reports import exitcodes
from harness.reports.loading import ReportError, load_summary

PROG = "lp-harness"


def _fraction(text: str) -> float:
    """'10%' -> 0.1, '0.1' -> 0.1."""
    t = text.strip()
    try:
        return float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction such as 0.1 or 10%") from None


def _ms(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 5 or 5ms or 0.5s")
    return float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)


def _ratio(text: str) -> float:
    """'0.5pp' / '0.5%' -> 0.005, '0.005' -> 0.005."""
    t = text.strip()
    try:
        if t.endswith("pp"):
            return float(t[:-2]) / 100.0
        return _fraction(t)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ratio such as 0.005, 0.5% or 0.5pp") from None


def _write(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ReportError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return exitcodes.ERROR
        except OSError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return exitcodes.ERROR

    return run


# -------------------------------------------------------------------------------------------- compare


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="compare two runs (base, candidate): per-step and per-phase verdicts",
        description="Compare a candidate run against a base run. A metric is regressed/improved only when the "
        "change is beyond the tolerance AND beyond what the runs' own samples explain (docs/reports.md).",
    )
    p.add_argument("base", help="base run folder or summary.json")
    p.add_argument("candidate", help="candidate run folder or summary.json")
    p.add_argument(
        "--tolerance",
        type=_fraction,
        default=0.10,
        metavar="FRACTION",
        help="relative tolerance for latency and throughput (default 10%%)",
    )
    p.add_argument(
        "--abs-tolerance",
        type=_ms,
        default=5.0,
        metavar="MS",
        help="latency changes below this never count (default 5ms)",
    )
    p.add_argument(
        "--ratio-tolerance",
        type=_ratio,
        default=0.005,
        metavar="RATIO",
        help="failure-ratio changes below this never count (default 0.5pp)",
    )
    p.add_argument(
        "--confidence",
        type=_fraction,
        default=0.95,
        help="confidence that a flagged change is real (default 95%%, family-wise)",
    )
    p.add_argument(
        "--per-metric",
        action="store_true",
        help="apply --confidence to each metric instead of to the whole comparison (more flags)",
    )
    p.add_argument(
        "--duration-tolerance",
        type=_fraction,
        default=0.25,
        metavar="FRACTION",
        help="list durations that differ by more than this (default 25%%)",
    )
    p.add_argument("--force", action="store_true", help="compare even when target, scenario or users differ")
    p.add_argument(
        "--trust-saturated",
        action="store_true",
        help="judge latency and throughput even when a run's load generator was saturated",
    )
    p.add_argument(
        "--fail-on-regression", action="store_true", help=f"exit {exitcodes.REGRESSION} when any metric regressed"
    )
    p.add_argument("--out", metavar="DIR", help="write compare.html, compare.md and compare.json here")
    p.add_argument("--html", metavar="FILE", help="write the HTML page here")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown here")
    p.add_argument("--json", metavar="FILE", help="write the comparison as JSON here")
    p.add_argument(
        "--format",
        choices=("text", "markdown", "json", "none"),
        default="text",
        help="what to print on stdout (default text)",
    )
    p.set_defaults(handler=_guard(_run_compare))
    return p


def _run_compare(args: argparse.Namespace) -> int:
    from harness.reports import render
    from harness.reports.compare import NotComparable, Tolerance, compare

    base, cand = load_summary(args.base), load_summary(args.candidate)
    tol = Tolerance(
        relative=args.tolerance,
        absolute_ms=args.abs_tolerance,
        ratio=args.ratio_tolerance,
        confidence=args.confidence,
        duration=args.duration_tolerance,
        family_wise=not args.per_metric,
    )
    try:
        result = compare(base, cand, tol, force=args.force, trust_saturated=args.trust_saturated)
    except NotComparable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        for m in exc.comparability.refusals:
            print(f"  {m.text()}", file=sys.stderr)
        return exitcodes.NOT_COMPARABLE
    outputs = {"html": args.html, "markdown": args.markdown, "json": args.json}
    if args.out:
        out = Path(args.out)
        outputs = {
            "html": args.html or out / "compare.html",
            "markdown": args.markdown or out / "compare.md",
            "json": args.json or out / "compare.json",
        }
    written = []
    if outputs["html"]:
        written.append(_write(outputs["html"], render.html(result, base, cand)))
    if outputs["markdown"]:
        written.append(_write(outputs["markdown"], render.markdown(result)))
    if outputs["json"]:
        written.append(_write(outputs["json"], json.dumps(result, indent=2, default=_json_default) + "\n"))
    if args.format == "text":
        print(render.terminal(result))
    elif args.format == "markdown":
        print(render.markdown(result), end="")
    elif args.format == "json":
        print(json.dumps(result, indent=2, default=_json_default))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if result["regressed"] and args.fail_on_regression:
        return exitcodes.REGRESSION
    return exitcodes.OK


def _json_default(o: Any) -> Any:
    return str(o)


# ---------------------------------------------------------------------------------------------- trend


def add_trend_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "trend",
        help="chart metrics across many runs (one HTML page)",
        description="One HTML page with chosen metrics across runs, in date or label (release) order.",
    )
    p.add_argument("runs", nargs="+", help="run folders, summary files, or folders of run folders")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="SPEC",
        help="a chart: comma-separated SCOPE:METRIC items, e.g. 'authenticate:p50,p95' or "
        "'phase:socket:fail_ratio' or '*:fail_ratio' (repeatable; default: a standard set)",
    )
    p.add_argument(
        "--order",
        choices=("date", "label", "given"),
        default="date",
        help="x-axis order: start time, natural label order (release-1.9 < release-1.10), or as given",
    )
    p.add_argument("--out", default="trend.html", metavar="FILE", help="HTML file to write (default trend.html)")
    p.add_argument("--title", default="lp-harness trend")
    p.set_defaults(handler=_guard(_run_trend))
    return p


def _run_trend(args: argparse.Namespace) -> int:
    from harness.reports.trend import load_runs, trend_html

    runs = load_runs(args.runs)
    path = _write(args.out, trend_html(runs, args.metric or None, order=args.order, title=args.title))
    print(f"wrote {path} ({len(runs)} runs)")
    return exitcodes.OK


# ------------------------------------------------------------------------------------------- baseline


def add_baseline_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("baseline", help="manage the stored baseline run")
    sub = p.add_subparsers(dest="baseline_command", required=True)
    promote = sub.add_parser("promote", help="copy a run's summary and reports as the stored baseline")
    _promote_arguments(promote)
    return p


def _promote_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (reports/<run-id>)")
    p.add_argument("--to", required=True, metavar="DIR", help="the baseline folder (replaced)")
    p.add_argument("--force", action="store_true", help="promote even a run whose thresholds failed")
    p.set_defaults(handler=_guard(_run_promote))


def _run_promote(args: argparse.Namespace) -> int:
    from harness.reports.baseline import promote

    info = promote(args.run_dir, args.to, force=args.force)
    print(f"promoted run {info['run_id']} ({info['label'] or 'no label'}) to {args.to}")
    return exitcodes.OK


# ----------------------------------------------------------------------------------------- thresholds


def add_thresholds_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("thresholds", help="check thresholds against a finished run's summary")
    sub = p.add_subparsers(dest="thresholds_command", required=True)
    check = sub.add_parser("check", help="evaluate rules against a summary; exit 0 or 3")
    _check_arguments(check)
    return p


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder or summary.json")
    p.add_argument("--thresholds", action="append", default=[], metavar="FILE", help="TOML thresholds file")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="RULE",
        help="a rule, e.g. 'authenticate:p95<200' (repeatable)",
    )
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.set_defaults(handler=_guard(_run_check))


def _run_check(args: argparse.Namespace) -> int:
    from harness.reports.summary import generator_verdict
    from harness.reports.thresholds import evaluate, junit_xml, load_rules, terminal_table

    summary = load_summary(args.run)
    rules = load_rules(args.thresholds, args.threshold)
    if not rules:
        raise ReportError("no thresholds given (--thresholds FILE or --threshold RULE)")
    report = evaluate(rules, summary)
    print(terminal_table(report))
    if args.junit:
        run_id = (summary.get("run") or {}).get("id")
        _write(args.junit, junit_xml(report, run_id=run_id, generator=generator_verdict(summary)))
    return exitcodes.OK if report.passed else exitcodes.THRESHOLDS_FAILED


# --------------------------------------------------------------------------------------------- report


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="write the HTML page of one run from its summary")
    p.add_argument("run", help="run folder or summary.json")
    p.add_argument("--out", metavar="FILE", help="default: report.html beside the summary")
    p.set_defaults(handler=_guard(_run_report))
    return p


def _run_report(args: argparse.Namespace) -> int:
    from harness.reports.loading import summary_path
    from harness.reports.run_page import run_html

    summary = load_summary(args.run)
    out = args.out or summary_path(args.run).with_name("report.html")
    print(f"wrote {_write(out, run_html(summary))}")
    return exitcodes.OK


# ------------------------------------------------------------------------------------------ dispatch

PARSERS = {
    "compare": add_compare_parser,
    "trend": add_trend_parser,
    "baseline": add_baseline_parser,
    "thresholds": add_thresholds_parser,
    "report": add_report_parser,
}


def register(subparsers: Any) -> None:
    """Add every reports subcommand; dispatch with ``args.handler(args)``."""
    for add in PARSERS.values():
        add(subparsers)


def _main(name: str, argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=PROG)
    sub = parser.add_subparsers(dest="command", required=True)
    PARSERS[name](sub)
    try:
        args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    return args.handler(args)


def main_compare(argv: Sequence[str] | None = None) -> int:
    return _main("compare", argv)


def main_trend(argv: Sequence[str] | None = None) -> int:
    return _main("trend", argv)


def main_baseline(argv: Sequence[str] | None = None) -> int:
    """``baseline promote RUN_DIR --to DIR`` (argv starts with 'promote')."""
    return _main("baseline", argv)


def main_promote(argv: Sequence[str] | None = None) -> int:
    """``RUN_DIR --to DIR [--force]`` without the 'promote' word."""
    return main_baseline(["promote", *(sys.argv[1:] if argv is None else argv)])


def main_thresholds(argv: Sequence[str] | None = None) -> int:
    """``thresholds check RUN [--thresholds FILE] [--threshold RULE] [--junit FILE]``."""
    return _main("thresholds", argv)


def main_report(argv: Sequence[str] | None = None) -> int:
    return _main("report", argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.reports SUBCOMMAND ...`` (the same commands as ``lp-harness``)."""
    parser = argparse.ArgumentParser(prog=PROG)
    register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return args.handler(args)
