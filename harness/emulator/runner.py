"""Start the aiohttp server for one emulator process, print its URL, serve until told to stop.

:class:`RunningEmulator` is also the in-process entry for tests that want the real server on
a real loopback socket inside their own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from harness import heap
from harness.emulator import fastsocket
from harness.emulator.config import EmulatorConfig
from harness.emulator.fastlane import FastLane, Hooks
from harness.emulator.process import install_stop_signals, listen_socket, url_for, watch_lifeline
from harness.emulator.server import Emulator
from harness.emulator.tls import SelfSigned, self_signed, server_context

log = logging.getLogger("lp-emulator")


@dataclass
class RunningEmulator:
    emulator: Emulator
    runner: web.AppRunner
    url: str
    monitor: asyncio.Future[None] | None = None
    ssl_context: ssl.SSLContext | None = None
    lanes: set[FastLane] = field(default_factory=set)  # open fast-lane connections
    tls_files: SelfSigned | None = None  # a certificate made for this process, removed at stop

    async def stop(self, grace_s: float = 2.0) -> None:
        """Close every socket with 1001 (going away), then stop serving."""
        if self.monitor is not None:
            self.monitor.cancel()
        await self.emulator.sockets.close_all(grace_s)
        for lane in list(self.lanes):
            lane.close()
        await self.runner.cleanup()
        if self.tls_files is not None:
            self.tls_files.remove()


class FastLaneSite(web.SockSite):
    """``web.SockSite`` whose connections are read first by :class:`~harness.emulator.fastlane.FastLane`."""

    __slots__ = ("_hooks", "_lanes")

    def __init__(
        self, runner: web.AppRunner, sock: socket.socket, hooks: Hooks, lanes: set[FastLane], **kwargs: Any
    ) -> None:
        super().__init__(runner, sock, **kwargs)
        self._hooks = hooks
        self._lanes = lanes

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (stopped by cleanup)
        server = self._runner.server
        assert server is not None
        hooks, lanes = self._hooks, self._lanes
        self._server = await asyncio.get_running_loop().create_server(
            lambda: FastLane(hooks, server, lanes), sock=self._sock, backlog=self._backlog
        )


def use_fast_lane(config: EmulatorConfig) -> bool:
    """The fast lane serves plain HTTP only, and only where this aiohttp has what it needs."""
    return not config.tls and fastsocket.available()


async def start(
    config: EmulatorConfig,
    *,
    sock: socket.socket | None = None,
    emulator: Emulator | None = None,
) -> RunningEmulator:
    """Bind (or use ``sock``), start serving, and return the running server."""
    emulator = emulator or Emulator(config)
    app = emulator.make_app()
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    if sock is None:
        sock = listen_socket(config.host, config.port)
    ssl_context = None
    made: SelfSigned | None = None
    if config.tls:
        if config.tls_cert and config.tls_key:  # a --processes worker: the parent made (and removes) them
            cert, key = Path(config.tls_cert), Path(config.tls_key)
        else:
            made = self_signed(config.host, config.tls_dir)
            cert, key = made.cert, made.key
        ssl_context = server_context(cert, key)
        if made is not None:
            made.forget_key()  # loaded: nothing left on disk to read
        emulator.tls_cert = str(cert)
    lanes: set[FastLane] = set()
    if ssl_context is None and use_fast_lane(config):
        site: web.SockSite = FastLaneSite(runner, sock, emulator.fast_lane_hooks(), lanes, backlog=config.backlog)
    else:
        site = web.SockSite(runner, sock, ssl_context=ssl_context, backlog=config.backlog)
    await site.start()
    port = sock.getsockname()[1]
    url = url_for(config.host, port, config.tls)
    emulator.url = url
    emulator.public_host = url.split("://", 1)[1]
    asyncio.get_running_loop().set_exception_handler(emulator.fd_monitor.loop_exception_handler)
    monitor = asyncio.ensure_future(emulator.fd_monitor.probe(sock.fileno()))
    return RunningEmulator(emulator, runner, url, monitor, ssl_context, lanes, made)


async def serve(
    config: EmulatorConfig,
    *,
    sock: socket.socket | None = None,
    print_url: bool = True,
    emulator: Emulator | None = None,
) -> int:
    """The process's main coroutine: start, print the URL line, wait for SIGTERM/SIGINT, stop."""
    running = await start(config, sock=sock, emulator=emulator)
    heap.freeze_startup()  # the agents, the app, the modules: out of every full collection's pause
    if print_url:
        sys.stdout.write(running.url + "\n")
        sys.stdout.flush()
    log.info(
        "emulator serving %s (account %s, idle timeout %g s, LP token %g s, anonymous token %g s)%s",
        running.url,
        config.account or "any",
        config.idle_timeout,
        config.lp_token_lifetime,
        config.anon_token_lifetime,
        f", TLS certificate {running.emulator.tls_cert}" if running.emulator.tls_cert else "",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    install_stop_signals(loop, stop)
    watch_lifeline(loop, stop)
    await stop.wait()
    log.info("stopping: %d sockets open", len(running.emulator.sockets.open))
    await running.stop()
    return 0
