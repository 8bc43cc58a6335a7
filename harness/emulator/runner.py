"""Start the aiohttp server for one emulator process, print its URL, serve until told to stop.

:class:`RunningEmulator` is also the in-process entry for tests that want the real server on
a real loopback socket inside their own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.emulator.cli import install_stop_signals, listen_socket, url_for, watch_lifeline
from harness.emulator.config import EmulatorConfig
from harness.emulator.server import Emulator
from harness.protocol.messages import CloseCode

log = logging.getLogger("lp-emulator")


@dataclass
class RunningEmulator:
    emulator: Emulator
    runner: web.AppRunner
    url: str
    monitor: asyncio.Future[None] | None = None
    ssl_context: ssl.SSLContext | None = None

    async def stop(self, grace_s: float = 2.0) -> None:
        """Close every socket with 1001 (going away), then stop serving."""
        emulator = self.emulator
        if self.monitor is not None:
            self.monitor.cancel()
        socks = list(emulator.sockets)
        if socks:
            for sock in socks:
                if sock.closed_by is None:
                    sock.closed_by = "server"
                    emulator.ledger.server_close(CloseCode.GOING_AWAY)
            closes = [s.ws.close(code=CloseCode.GOING_AWAY, message=b"emulator stopping") for s in socks]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), grace_s)
        for lane in list(emulator.lanes):
            lane.close()
        await self.runner.cleanup()


class FastLaneSite(web.SockSite):
    """``web.SockSite`` whose connections are read first by :class:`~harness.emulator.fastlane.FastLane`."""

    __slots__ = ("_emulator",)

    def __init__(self, runner: web.AppRunner, sock: socket.socket, emulator: Emulator, **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self._emulator = emulator

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (stopped by cleanup)
        from harness.emulator.fastlane import FastLane

        server = self._runner.server
        assert server is not None
        emulator, lanes = self._emulator, self._emulator.lanes
        self._server = await asyncio.get_running_loop().create_server(
            lambda: FastLane(emulator, server, lanes), sock=self._sock, backlog=self._backlog
        )


def use_fast_lane(config: EmulatorConfig) -> bool:
    """The fast lane serves plain HTTP only, and only where this aiohttp has what it needs."""
    if config.tls:
        return False
    from harness.emulator import fastlane

    return fastlane.available()


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
    if config.tls:
        from harness.emulator.tls import make_self_signed, server_context

        if config.tls_cert and config.tls_key:
            cert, key = Path(config.tls_cert), Path(config.tls_key)
        else:
            cert, key = make_self_signed(config.host, config.tls_dir)
        ssl_context = server_context(cert, key)
        emulator.tls_cert = str(cert)
    if ssl_context is None and use_fast_lane(config):
        site: web.SockSite = FastLaneSite(runner, sock, emulator, backlog=config.backlog)
    else:
        site = web.SockSite(runner, sock, ssl_context=ssl_context, backlog=config.backlog)
    await site.start()
    port = sock.getsockname()[1]
    url = url_for(config.host, port, config.tls)
    emulator.url = url
    emulator.public_host = url.split("://", 1)[1]
    asyncio.get_running_loop().set_exception_handler(emulator.loop_exception_handler)
    monitor = asyncio.ensure_future(emulator.fd_monitor(sock.fileno()))
    return RunningEmulator(emulator, runner, url, monitor, ssl_context)


async def serve(
    config: EmulatorConfig,
    *,
    sock: socket.socket | None = None,
    print_url: bool = True,
    emulator: Emulator | None = None,
) -> int:
    """The process's main coroutine: start, print the URL line, wait for SIGTERM/SIGINT, stop."""
    running = await start(config, sock=sock, emulator=emulator)
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
    install_stop_signals(asyncio.get_running_loop(), stop)
    watch_lifeline(asyncio.get_running_loop(), stop)
    await stop.wait()
    log.info("stopping: %d sockets open", len(running.emulator.sockets))
    await running.stop()
    return 0
