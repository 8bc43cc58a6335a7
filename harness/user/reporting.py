"""Write ``reports/<run-id>/`` and print the summary at the end of a run.

Each run's folder holds Locust's own reports (``locust_report.html``, ``locust_stats.csv``,
``locust_failures.csv``, ``locust_exceptions.csv``, ``locust_stats.json``) and ours
(``summary.json``, ``summary.txt``, ``report.html``, ``junit.xml`` with thresholds). They are
written when the test stops and again when Locust quits -- on a time limit, Ctrl-C or SIGTERM
alike -- so a run never loses the stats it has. The folder is checked before any user starts
(:func:`check_reports_dir`); if writing still fails at the end, the run says so in one line and
exits 2: never 0 with nothing written.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from locust import stats as locust_stats
from locust.env import Environment
from locust.html import get_html_report

from harness.reports import exitcodes, thresholds
from harness.reports.run_page import run_html
from harness.reports.summary import generator_verdict, terminal_table
from harness.settings import SettingsError
from harness.user import gate, workers
from harness.user.collect import current_summary, end_reason
from harness.user.state import has_run, state_of

log = logging.getLogger("lp-harness")


def check_reports_dir(path: str) -> None:
    """The reports folder can be created and written; SettingsError naming --lp-reports-dir otherwise."""
    folder = Path(path or "reports")
    fix = "give a folder you can write (it is created if missing) with --lp-reports-dir or LP_REPORTS_DIR"
    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"--lp-reports-dir {str(folder)!r} is not a folder: {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lp-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SettingsError(f"--lp-reports-dir {str(folder)!r} is not writable ({exc.strerror or exc}): {fix}") from None


def write_reports(environment: Environment, final: bool = False) -> str | None:
    """Write (or rewrite) this run's folder; returns its path. Never raises: a report failure is logged.

    ``final`` (on the way out) also sets the exit code, and a folder that cannot be written then
    makes it 2 with one line saying where and why.
    """
    state = state_of(environment)
    if not has_run(environment):
        return None  # no test ever started
    if final and state.end_reason is None:
        state.end_reason = end_reason(environment)
    folder: Path | None = None
    try:
        summary = current_summary(environment)
        workers.annotate(environment, summary)
        report = gate.verdict(summary, state.rules, final=final)
        if final:
            gate.set_exit_code(environment, summary, bool(state.rules))
        folder = Path(state.reports_path or "reports")
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")
        text = terminal_table(summary) + workers.lost_lines(summary)
        if report is not None:
            text += "\n\n" + thresholds.terminal_table(report)
            _write(folder / "junit.xml", thresholds.junit_xml(report, run_id=summary["run"]["id"], generator=generator_verdict(summary)))
        _write(folder / "summary.txt", text + "\n")
        _write(folder / "report.html", run_html(summary))
        _write(folder / "locust_report.html", get_html_report(environment, show_download_link=False))
        _write_locust_stats(environment, folder)
        if final:
            state.final_written = True
        return str(folder)
    except OSError as exc:  # the disk, not the harness: one line, and the run cannot end 0
        where = folder or state.reports_path or "reports"
        line = (
            f"could not write the reports to {where} ({exc.strerror or exc}): "
            "fix --lp-reports-dir (a writable folder with free space)"
        )
        if line != state.report_error:
            log.error("%s", line)
            state.report_error = line
        if final:
            environment.process_exit_code = exitcodes.ERROR
        return None
    except Exception:  # reports must never take the run down with them
        log.exception("writing reports failed")
        if final:
            environment.process_exit_code = exitcodes.ERROR
        return None


def _write_locust_stats(environment: Environment, folder: Path) -> None:
    """Locust's JSON and CSV files, as ``--json``/``--csv`` would write them."""
    # Locust's own save_stats_json() empties the entries it serialises; serialise without resetting.
    entries = [e.serialize() for e in environment.runner.stats.entries.values() if e.num_requests or e.num_failures]
    _write(folder / "locust_stats.json", json.dumps(entries, indent=4) + "\n")
    stats_csv = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
    for name, method in (
        ("stats", stats_csv.requests_csv),
        ("failures", stats_csv.failures_csv),
        ("exceptions", stats_csv.exceptions_csv),
    ):
        with open(folder / f"locust_{name}.csv", "w", newline="", encoding="utf-8") as handle:
            method(csv.writer(handle))


def print_summary(environment: Environment) -> None:
    """The run's ``summary.txt`` on stdout: the last thing a headless run shows."""
    state = state_of(environment)
    if state.reports_path is None:
        return
    try:
        text = (Path(state.reports_path) / "summary.txt").read_text()
    except OSError:
        return
    sys.stdout.write("\n" + text + "\n")
    sys.stdout.flush()


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
