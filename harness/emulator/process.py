"""Process plumbing shared by the single-process runner, the ``--processes`` workers and the CLI.

Sockets to listen on, the URL a bound socket is reached at, the event loop (uvloop when
installed), stop signals, the open-file limit, and the stdin lifeline. Nothing here knows about
the emulator itself, so every layer above may use it and it imports none of them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("lp-emulator")

T = TypeVar("T")
LIFELINE_ENV = "LP_EMULATOR_LIFELINE"
ADMIN_TOKEN_ENV = "LP_EMULATOR_ADMIN_TOKEN"  # the admin token, passed without showing it in `ps`


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (every held socket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard


def listen_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "" and "0.0.0.0"-like wildcards are not addresses of one interface; names may be anything


def url_for(host: str, port: int, tls: bool) -> str:
    """The base URL a client uses for a socket bound to ``host``: a wildcard address shows as loopback."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    uvloop.install()  # Python 3.10
    return asyncio.run(coro)


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def lifeline_fd() -> int | None:
    """Standard input, when the process that started us holds its other end (EmulatorProcess does).

    Its end of file means that process is gone -- even by SIGKILL -- and an embedded emulator must
    not outlive the load test that started it.
    """
    return sys.stdin.fileno() if os.environ.get(LIFELINE_ENV) == "1" and sys.stdin is not None else None


def watch_lifeline(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    fd = lifeline_fd()
    if fd is None:
        return

    def readable() -> None:
        if not os.read(fd, 4096):
            log.warning("the process that started this emulator is gone: stopping")
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)
