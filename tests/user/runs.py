"""Running the real ``locust`` command in tests: bounded, on loopback, killed by PID if it hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")]
# A short run with quick timeouts and pauses, for faults that must show within two seconds.
QUICK = [
    *("-u", "3", "-r", "30", "-t", "2s", "--stop-timeout", "5"),
    *("--lp-hold", "0.6", "--lp-ping-interval", "0.1", "--lp-pong-timeout", "0.25", "--lp-request-timeout", "0.5"),
    *("--lp-retry-pauses", "0.05", "--lp-backoff-base", "0.1", "--lp-backoff-cap", "0.2"),
]


@dataclass
class LocustRun:
    returncode: int
    output: str
    reports_dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        folders = sorted(p for p in self.reports_dir.iterdir() if (p / "summary.json").is_file())
        assert folders, f"no report folder in {self.reports_dir}; output:\n{self.output[-3000:]}"
        return json.loads((folders[-1] / "summary.json").read_text())

    @property
    def run_folder(self) -> Path:
        return sorted(p for p in self.reports_dir.iterdir() if p.is_dir())[-1]


def run_locust(
    args: list[str],
    reports_dir: Path,
    *,
    target: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> LocustRun:
    """``locust --headless`` with ``args``; ``target`` is an emulator URL (None: the embedded one)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LP_") and not k.startswith("LOCUST_")}
    full_env.update({"PYTHONUNBUFFERED": "1", "LP_REPORTS_DIR": str(reports_dir)})
    if target:
        full_env.update({"LP_ACCOUNT": "test-account", "LP_IDP": target, "LP_ASYNCMESSAGINGENT": target})
    full_env.update(env or {})
    command = [*LOCUST, "--headless", "--only-summary", *args]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # only the process this helper started, by its handle
        output, _ = proc.communicate()
        raise AssertionError(f"locust did not finish in {timeout}s:\n{output[-3000:]}") from None
    return LocustRun(proc.returncode, output, reports_dir)
