"""A real ``locust`` process a test can talk to while it runs: wait for a log line, signal it, kill it.

:func:`tests.user.runs.run_locust` runs locust to the end; the signal and worker tests need to act
mid-run (a signal once users hold, a ``kill -9`` once a worker has reported), so this keeps the
process and reads its output on a thread, waking waiters on each line -- no sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.user.runs import LOCUST, ROOT


def clean_env(reports_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "LOCUST_"))}
    env.update({"PYTHONUNBUFFERED": "1", "LP_REPORTS_DIR": str(reports_dir)})
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """One locust process started by the test; every line it prints is kept in ``lines``."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*LOCUST, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str | Callable[[str], bool], timeout: float = 60) -> str:
        """The first line matching ``pattern`` (a regex, or a predicate); fails on timeout or exit."""
        match = (lambda line: re.search(pattern, line) is not None) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (not self._reader.is_alive() and seen == len(self.lines)):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.lines)[-3000:]}")
                self._changed.wait(timeout=left)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit; kill (by this handle) and fail if it does not come."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"locust did not exit in {timeout}s:\n{self.output[-3000:]}") from None
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """SIGKILL this process and what it started (an embedded emulator, forked workers), by PID."""
        if self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
