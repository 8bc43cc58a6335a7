"""Reading summaries from disk: a run folder or a ``summary.json``, checked for format and version.

The JSON Schema of the format ships inside this package (:func:`load_schema`), so an installed
lp-harness can validate a summary without the source tree -- and every reader does: a summary
that does not match it is refused with the file and the field named (:mod:`.schemacheck`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from harness.reports.schemacheck import first_problem
from harness.reports.summary import FORMAT, VERSION

SUPPORTED_VERSIONS: Final = (VERSION,)  # older versions join this tuple when a reader for them is kept
SUMMARY_FILE: Final = "summary.json"
SCHEMA_FILE: Final = "summary.schema.json"


class ReportError(Exception):
    """A file or option the reports tools cannot use; the message says which and why (exit code 2)."""


def summary_path(path: str | Path) -> Path:
    """``path`` itself when it is a file, else ``path/summary.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    if not p.is_file():
        raise ReportError(f"{path}: no {SUMMARY_FILE} here (give a run folder or a summary file)")
    return p


def load_summary(path: str | Path) -> dict[str, Any]:
    """The summary dict of a run folder or summary file; ReportError if it is not one we can read."""
    p = summary_path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{p}: not readable JSON ({exc})") from None
    check_summary(data, str(p))
    return data


def check_summary(data: Any, where: str = "summary") -> None:
    """Format, version, then the whole schema; ReportError naming ``where`` and the first bad field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReportError(f"{where}: not an lp-harness summary (format must be {FORMAT!r})")
    if data.get("version") not in SUPPORTED_VERSIONS:
        raise ReportError(
            f"{where}: summary version {data.get('version')!r} is not supported (this lp-harness reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade lp-harness"
        )
    for key in ("run", "steps"):
        if not isinstance(data.get(key), dict):
            raise ReportError(f"{where}: missing the {key!r} section")
    problem = first_problem(data, _schema())
    if problem is not None:
        raise ReportError(
            f"{where}: not a valid summary: field {problem} (the file is damaged or was edited by hand: "
            "use the run's original summary.json, or rerun)"
        )


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Summary files for each argument: a run folder, a summary file, or a folder of run folders."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir() and not (p / SUMMARY_FILE).is_file():
            found = sorted(q / SUMMARY_FILE for q in p.iterdir() if (q / SUMMARY_FILE).is_file())
            if not found:
                raise ReportError(f"{path}: no run folders (with {SUMMARY_FILE}) inside")
            out.extend(found)
        else:
            out.append(summary_path(p))
    return out


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return load_schema()


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``summary.json``, read from the installed package."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
