"""Exit codes of every lp-harness command, in one place, so CI can tell outcomes apart.

A run with no thresholds keeps Locust's behaviour (1 when any request failed). A run with
thresholds exits on the thresholds alone: 3 when one broke, 0 when all held, whatever the raw
failure count (that is what ``fail_ratio`` rules are for). 2 is always the harness's own fault or
the user's configuration, never the target's. See docs/reports.md.
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

DESCRIPTIONS: Final = {
    OK: "ok",
    FAILURES: "requests failed (no thresholds set: Locust's rule)",
    ERROR: "harness or configuration error",
    THRESHOLDS_FAILED: "threshold failed",
    REGRESSION: "regression found (--fail-on-regression)",
    NOT_COMPARABLE: "runs not comparable (use --force)",
}


def run_exit_code(summary: Mapping[str, Any], *, exceptions: int = 0) -> int:
    """The exit code a finished run should end with, from its summary alone.

    ``exceptions``: unhandled exceptions in user code (Locust counts those as errors too).
    """
    run = summary.get("run") or {}
    if run.get("end_reason") == "error":
        return ERROR
    thresholds = summary.get("thresholds")
    if thresholds and thresholds.get("rules"):
        return OK if thresholds.get("passed") else THRESHOLDS_FAILED
    if run.get("end_reason") == "threshold abort":
        return THRESHOLDS_FAILED
    failed = exceptions > 0 or any((s.get("failures") or 0) > 0 for s in (summary.get("steps") or {}).values())
    failed = failed or any((p.get("failures") or 0) > 0 for p in (summary.get("phases") or {}).values())
    return FAILURES if failed else OK
