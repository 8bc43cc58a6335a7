"""A real HTTP proxy for the tests: Debian's tinyproxy on 127.0.0.1, started and stopped by PID.

``.ci/run`` installs it; elsewhere a test that needs it skips with a message (with ``CI`` set it
fails instead: CI must run it). Its log (``LogLevel Connect``, written as it happens) says who
connected from which address and what they asked for, so a test can prove what went through it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.tools import system_binary

START_TIMEOUT_S = 10.0
_CONNECT_RE = re.compile(r"Connect \(file descriptor (\d+)\): (\S+)")
_REQUEST_RE = re.compile(r"Request \(file descriptor (\d+)\): (.+)")


@dataclass
class Tinyproxy:
    """One started tinyproxy: its port, log and process (stopped by :meth:`stop`)."""

    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        """(client address, request line) of every request it read, e.g. ("127.0.3.1", "CONNECT 127.0.0.1:80 HTTP/1.1")."""
        client: dict[str, str] = {}
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if (m := _CONNECT_RE.search(line)) is not None:
                client[m.group(1)] = m.group(2)
            elif (m := _REQUEST_RE.search(line)) is not None:
                found.append((client.get(m.group(1), "?"), m.group(2).strip()))
        return found

    def connects_to(self, port: int) -> list[str]:
        """The client address of each CONNECT to 127.0.0.1:``port``."""
        return [who for who, line in self.requests() if line.startswith(f"CONNECT 127.0.0.1:{port} ")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the process this helper started, by its handle
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def need_tinyproxy() -> str:
    """The tinyproxy binary; skip (fail in CI) when it is not installed."""
    return system_binary("tinyproxy")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def start_tinyproxy(folder: Path, extra: list[str]) -> Tinyproxy:
    """tinyproxy in the foreground on a free loopback port, ``extra`` config lines added; waits until it listens."""
    binary = need_tinyproxy()
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):  # a free port can be taken between the probe and tinyproxy's bind
        port = _free_port()
        log = folder / f"tinyproxy-{port}.log"
        conf = folder / f"tinyproxy-{port}.conf"
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "LogLevel Connect",
            f'LogFile "{log}"',
            "MaxClients 64",
        ]
        conf.write_text("\n".join([*lines, *extra]) + "\n")
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = Tinyproxy(port, log, proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _listening(port):
                return proxy
            time.sleep(0.02)  # polling its port, bounded: tinyproxy says nothing when it is ready
        proxy.stop()
    raise AssertionError(f"tinyproxy did not start; its log:\n{log.read_text() if log.exists() else ''}")


def proxies(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """The body of a ``tinyproxy`` fixture: ``tinyproxy(*config_lines)`` -> a started proxy, each
    one stopped by PID at teardown (``yield from proxies(tmp_path)``)."""
    started: list[Tinyproxy] = []

    def start(*extra: str) -> Tinyproxy:
        proxy = start_tinyproxy(tmp_path / "tinyproxy", list(extra))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def dead_port() -> int:
    """A loopback port nothing listens on (a proxy that is down)."""
    return _free_port()
