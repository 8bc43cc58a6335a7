"""Start and stop an emulator subprocess, and talk to its admin API (stdlib only).

The load client (gevent, locust) and the tests import this module, so it must not import
aiohttp or anything else the emulator server needs: it spawns ``python -m harness.emulator``
and reads the base URL the server prints as the first line of its standard output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import IO, Any

from harness.emulator.process import ADMIN_TOKEN_ENV, LIFELINE_ENV


class EmulatorError(RuntimeError):
    """The emulator did not start, or its admin API refused a request."""


class EmulatorProcess:
    """One emulator subprocess on 127.0.0.1.

    ``EmulatorProcess(["--lp-token-lifetime", "60"]).start()`` spawns
    ``[sys.executable, "-m", "harness.emulator", "--host", "127.0.0.1", "--port", "0", *args]``
    and waits for the first output line, the base URL (``http://127.0.0.1:43121``).
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        startup_timeout: float = 20.0,
        stderr: int | IO[Any] | None = None,
        env: Mapping[str, str] | None = None,
        preexec_fn: Any = None,
        admin_token: str | None = None,
        new_session: bool = False,
    ) -> None:
        """``admin_token``: the emulator requires it on /admin/* (passed in its environment, not its
        command line, so ``ps`` does not show it); this object's admin calls send it.
        ``new_session``: out of the terminal's process group, so a Ctrl-C meant for the load test
        does not stop its target before the users have closed their conversations (the lifeline
        still ends it with us)."""
        self.new_session = new_session
        self.args = [str(a) for a in args]
        self.admin_token = admin_token
        self.startup_timeout = startup_timeout
        self._stderr = stderr
        self._env = dict(env) if env is not None else None
        self._preexec_fn = preexec_fn
        self._proc: subprocess.Popen[bytes] | None = None
        self.url: str = ""
        self.returncode: int | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EmulatorError("emulator not started")
        return self._proc.pid

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "harness.emulator", "--host", "127.0.0.1", "--port", "0", *self.args]

    def start(self) -> EmulatorProcess:
        if self._proc is not None:
            raise EmulatorError("emulator already started")
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[LIFELINE_ENV] = "1"
        if self.admin_token:
            env[ADMIN_TOKEN_ENV] = self.admin_token
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,  # the lifeline: its EOF (we are gone, even by SIGKILL) stops the emulator
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            preexec_fn=self._preexec_fn,  # noqa: PLW1509 -- only tests pass one (rlimits)
            start_new_session=self.new_session,
        )
        line = self._first_line()
        if not line.startswith(("http://", "https://")):
            self._kill()
            raise EmulatorError(f"emulator did not print its URL (got {line[:200]!r}, exit {self.returncode})")
        self.url = line
        # Drain stdout so that a stray write can never block the server on a full pipe.
        threading.Thread(target=self._drain, name="emulator-stdout", daemon=True).start()
        return self

    def _first_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self.startup_timeout)
        if reader.is_alive() or not result:
            self._kill()
            raise EmulatorError(f"emulator printed no URL within {self.startup_timeout} s")
        if not result[0]:
            self.returncode = self._proc.wait(5)
            raise EmulatorError(f"emulator exited with {self.returncode} before printing its URL")
        return result[0].decode("utf-8", "replace").strip()

    def _drain(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            while proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self.returncode = self._proc.wait(5)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM by PID, then SIGKILL after ``timeout``; returns the exit code."""
        proc = self._proc
        if proc is None:
            return 0 if self.returncode is None else self.returncode
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self.returncode = proc.returncode
        if proc.stdout is not None:
            # The drain thread may be inside read() (under gevent a close then is "reentrant"): it ends at EOF.
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdout.close()
        return self.returncode

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin API
    def admin(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One admin API call; returns the decoded JSON answer, raises EmulatorError on 4xx/5xx."""
        if not self.url:
            raise EmulatorError("emulator not started")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        context = None
        if self.url.startswith("https://"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the emulator's certificate is self-signed
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise EmulatorError(f"{method} {path} -> {exc.code}: {detail}") from None

    def ledger(self) -> dict[str, Any]:
        return self.admin("GET", "/admin/ledger")

    def reset_ledger(self) -> None:
        self.admin("POST", "/admin/ledger/reset")

    def get_faults(self) -> dict[str, Any]:
        return self.admin("GET", "/admin/faults")

    def set_faults(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return self.admin("PUT", "/admin/faults", cfg)

    def get_agents(self) -> dict[str, Any]:
        """The agent configuration in force, under the --agent* option names."""
        return self.admin("GET", "/admin/agents")

    def set_agents(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Replace the agent configuration (``{"agents": 10, "agent-reply-delay": "200"}``; ``{}``: none)."""
        return self.admin("PUT", "/admin/agents", cfg)

    def health(self) -> dict[str, Any]:
        return self.admin("GET", "/admin/health")

    def config(self) -> dict[str, Any]:
        """The options the emulator runs with, under their config-file keys."""
        return self.admin("GET", "/admin/config")

    def wait_until(self, predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> dict[str, Any]:
        """Poll the ledger until ``predicate(ledger)`` is true; returns that ledger (tests' helper)."""
        deadline = time.monotonic() + timeout
        ledger = self.ledger()
        while not predicate(ledger):
            if time.monotonic() > deadline:
                raise EmulatorError(f"ledger condition not met within {timeout} s: {json.dumps(ledger)[:2000]}")
            time.sleep(interval)
            ledger = self.ledger()
        return ledger
