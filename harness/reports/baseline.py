"""Promote a run to the stored baseline: copy its summary and reports into one folder, atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from harness.reports.loading import SUMMARY_FILE, ReportError, load_summary

MARKER: Final = "baseline.json"  # what was promoted, from where, when


def promote(run_dir: str | Path, to: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Copy the run folder's files (summary.json, reports) into ``to``, replacing a previous baseline.

    Refuses (ReportError) a run whose thresholds failed or that ended in an error, unless ``force``,
    and refuses to overwrite a folder that is not a baseline (no summary.json nor baseline.json).
    """
    src = Path(run_dir)
    if not src.is_dir():
        raise ReportError(f"{run_dir}: not a run folder")
    summary = load_summary(src)
    run = summary.get("run") or {}
    problems = []
    if run.get("end_reason") in ("error", "threshold abort", "target down"):
        problems.append(f"it ended with {run.get('end_reason')!r}")
    th = summary.get("thresholds")
    if th and not th.get("passed", True):
        problems.append("its thresholds failed")
    if problems and not force:
        raise ReportError(f"{run_dir}: not promoted because {' and '.join(problems)} (use --force to promote anyway)")
    dest = Path(to)
    if dest.exists() and not dest.is_dir():
        raise ReportError(f"{to}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not ((dest / SUMMARY_FILE).exists() or (dest / MARKER).exists()):
        raise ReportError(f"{to}: a non-empty folder that is not a baseline; refusing to replace it")
    if dest.resolve() == src.resolve():
        raise ReportError(f"{to}: is the run folder itself")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for item in src.iterdir():
            if item.is_file() and not item.name.endswith(".tmp"):
                shutil.copy2(item, staging / item.name)
            elif item.is_dir():
                shutil.copytree(item, staging / item.name)
        info = {
            "promoted_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "source": str(src.resolve()),
            "run_id": run.get("id"),
            "label": run.get("label"),
            "forced": bool(problems),
            "problems": problems,
        }
        (staging / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return info
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
