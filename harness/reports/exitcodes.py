"""Exit codes of every lp-harness command, in one place, so CI can tell outcomes apart.

A run with no thresholds keeps Locust's behaviour (1 when any request failed). A run with
thresholds exits on the thresholds alone: 3 when one broke, 0 when all held, whatever the raw
failure count (that is what ``fail_ratio`` rules are for). 2 is always the harness's own fault or
the user's configuration, never the target's. A run stopped from outside (SIGTERM, Ctrl-C) is
partial: its thresholds are still evaluated and reported, but it exits 6 (k6 exits 105 for the
same), unless ``--lp-stop-is-success`` says the stop is the run's normal end (a soak an operator
ends). A run that lost a worker exits 7: its report misses what that worker did last. A breakpoint
run (docs/shapes.md) is meant to break a threshold: it exits 0 when it found its knee or never broke,
and 3 only when not even its first step held. See docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

OK: Final = 0  # success: thresholds held (or none set and no failures), no regression
FAILURES: Final = 1  # no thresholds set and some requests failed (Locust's --exit-code-on-error default)
ERROR: Final = 2  # harness or configuration error: bad settings/rules/files, crash, usage error
THRESHOLDS_FAILED: Final = 3  # at least one threshold broke (at the end, or an abort-on-fail abort)
REGRESSION: Final = 4  # compare --fail-on-regression found at least one regressed metric
NOT_COMPARABLE: Final = 5  # compare refused: the runs differ in target, scenario or users (use --force)
INTERRUPTED: Final = 6  # the run was stopped from outside (SIGTERM, SIGINT/Ctrl-C): a partial run
INCOMPLETE: Final = 7  # a worker was lost mid-run (no heartbeat): the report misses part of the load

DESCRIPTIONS: Final = {
    OK: "ok",
    FAILURES: "requests failed (no thresholds set: Locust's rule)",
    ERROR: "harness or configuration error",
    THRESHOLDS_FAILED: "threshold failed",
    REGRESSION: "regression found (--fail-on-regression)",
    NOT_COMPARABLE: "runs not comparable (use --force)",
    INTERRUPTED: "stopped from outside (SIGTERM/Ctrl-C): a partial run (--lp-stop-is-success to exit on its verdict)",
    INCOMPLETE: "a worker was lost: the report is incomplete",
}
EXTERNAL_STOPS: Final = ("sigterm", "sigint")  # end reasons that mean "stopped from outside"
BREAKPOINT_FOUND: Final = ("knee", "never broke")  # a breakpoint run that did its job (summary's breakpoint.verdict)


def run_exit_code(
    summary: Mapping[str, Any], *, exceptions: int = 0, stop_is_success: bool | None = None
) -> int:
    """The exit code a finished run should end with, from its summary alone.

    Precedence: a harness error (2), then a lost worker (7), then an outside stop (6), then a
    breakpoint's verdict (0/3), then the thresholds (0/3), then Locust's rule (0/1). ``exceptions``:
    unhandled exceptions in user code (Locust counts those as errors too). ``stop_is_success``: None
    reads the run's own setting.
    """
    run = summary.get("run") or {}
    if run.get("end_reason") in ("error", "target down"):  # target down: --lp-on-target-down abort
        return ERROR
    if run.get("lost_workers"):
        return INCOMPLETE
    if stop_is_success is None:
        stop_is_success = bool((run.get("settings") or {}).get("stop_is_success"))
    if run.get("end_reason") in EXTERNAL_STOPS and not stop_is_success:
        return INTERRUPTED
    verdict = (summary.get("breakpoint") or {}).get("verdict")
    if verdict in BREAKPOINT_FOUND:  # breaking a threshold is what a breakpoint run is for
        return OK
    if verdict == "no step held":
        return THRESHOLDS_FAILED
    thresholds = summary.get("thresholds")
    if thresholds and thresholds.get("rules"):
        return OK if thresholds.get("passed") else THRESHOLDS_FAILED
    if run.get("end_reason") == "threshold abort":
        return THRESHOLDS_FAILED
    failed = exceptions > 0 or any((s.get("failures") or 0) > 0 for s in (summary.get("steps") or {}).values())
    failed = failed or any((p.get("failures") or 0) > 0 for p in (summary.get("phases") or {}).values())
    return FAILURES if failed else OK
