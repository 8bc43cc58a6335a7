#!/usr/bin/env python3
"""One-command entry points for a fresh machine with only Python and pip.

    python3 tasks.py run  [locust options...]   the main job: a short headless run on the embedded emulator
    python3 tasks.py test [pytest options...]   the test suite (what .ci/run calls)
    python3 tasks.py ui   [locust options...]   Locust's web UI on 127.0.0.1, ready to run against the embedded emulator

Each creates ./.venv on first use and installs the project into it (again whenever pyproject.toml
changes), so nothing needs installing by hand. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".lp-harness-installed"


def _ensure_venv(extras: str) -> None:
    """Create the venv and install the project with ``extras`` unless the same install is done."""
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    if not (BIN / "python").exists():
        print(f"tasks.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"tasks.py: installing lp-harness{extras} into {VENV} (first run takes a minute)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f".{extras}"], check=True, cwd=ROOT)
    STAMP.write_text(want)


def _exec(argv: list[str]) -> int:
    print("tasks.py: " + " ".join(argv), flush=True)
    return subprocess.call(argv, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "ui"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "test":
        _ensure_venv("[test]")
        return _exec([str(BIN / "python"), "-m", "pytest", *rest])
    _ensure_venv("")
    locust = [str(BIN / "locust"), "-f", "locustfile.py"]
    if command == "ui":
        # Locust's web UI has no login and listens on every interface by default: bind it to this
        # machine unless told otherwise (--web-host, with --web-login on a shared machine).
        bind = [] if any(a.split("=")[0] == "--web-host" for a in rest) else ["--web-host", "127.0.0.1"]
        return _exec([*locust, *bind, *rest])
    return _exec([*locust, "--config", "scenarios/smoke.conf", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
