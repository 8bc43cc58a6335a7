"""The consumer socket's handshake (aiohttp's path) and the life of every accepted socket.

``consumer_socket`` is the aiohttp route: connect faults, the account, the ``Authorization``
header (:func:`~harness.emulator.idp.socket_token`, the same parser the fast lane uses), then the
upgrade. :meth:`ConsumerSockets.run` is the socket's life from accept to close, whichever path
accepted it.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import WSMsgType, web

from harness.emulator import ladder
from harness.emulator.core import Core
from harness.emulator.fastsocket import MAX_MSG_SIZE, FastSocket
from harness.emulator.faults import FaultSpec
from harness.emulator.frames import Frames
from harness.emulator.idp import Identity, IdpError, rejection_code, socket_token, token_error
from harness.emulator.ledger import TargetStats
from harness.emulator.sockets import Sock, Sockets
from harness.emulator.wire import error_response, reset_transport, retry_after, throttled_response
from harness.protocol.tokens import TokenError

perf = time.perf_counter


class ConsumerSockets:
    """Handshakes and the sockets they open."""

    def __init__(self, core: Core, sockets: Sockets, frames: Frames) -> None:
        self.core = core
        self.sockets = sockets
        self.frames = frames

    # ------------------------------------------------------------------ aiohttp's handshake
    async def consumer_socket(self, request: web.Request) -> web.StreamResponse:
        t0 = perf()
        stats = self.core.ledger.arrived("connect")
        wait = self.core.throttled(request.match_info["account"])
        if wait is not None:
            stats.error(429)
            self.core.ledger.sockets_rejected += 1
            return throttled_response(wait)
        exchange = Handshake(self, request, stats, t0)
        if self.core.plan.has_any("connect"):
            answer = await ladder.run(exchange, self.core.plan)
            assert answer is not None  # an HTTP exchange is never deferred
            return answer
        return await exchange.answer(0.0)

    def reject(
        self, stats: TargetStats, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        stats.error(status)
        self.core.ledger.sockets_rejected += 1
        return error_response(status, error, message, headers)

    # ------------------------------------------------------------------ an accepted socket
    async def accepted_fast(
        self, ws: FastSocket, transport: asyncio.BaseTransport | None, account: str, identity: Identity, t0: float
    ) -> None:
        """A socket the fast lane accepted (its 101 already written): counted as aiohttp's are."""
        stats = self.core.ledger.arrived("connect")
        stats.ok += 1
        stats.timing(perf() - t0, 0.0)
        await self.run(ws, transport, account, identity)

    async def run(
        self,
        ws: web.WebSocketResponse | FastSocket,
        transport: asyncio.BaseTransport | None,
        account: str,
        identity: Identity | None,
        close_after_accept: int | None = None,
    ) -> None:
        """The life of one accepted consumer socket, until it is closed or dropped."""
        sock = self.sockets.opened(ws, transport, account)
        try:
            if close_after_accept is not None:
                await self.sockets.server_close(sock, close_after_accept)
                return
            self.sockets.arm(sock, identity)
            await self._read_loop(sock, asyncio.get_running_loop())
        except asyncio.CancelledError:
            if sock.closed_by is None:
                sock.closed_by = "dropped"
            raise
        finally:
            self.sockets.done(sock)

    async def _read_loop(self, sock: Sock, loop: asyncio.AbstractEventLoop) -> None:
        ws = sock.ws
        frames = self.frames
        while True:
            msg = await ws.receive()
            sock.last_activity = loop.time()
            mtype = msg.type
            if mtype is WSMsgType.TEXT or mtype is WSMsgType.BINARY:
                await frames.on_frame(sock, msg.data)
            elif mtype is WSMsgType.PING:
                await frames.on_ping(sock, msg.data)
            elif mtype is WSMsgType.PONG:
                continue
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if sock.closed_by is None:
                    sock.closed_by = "client" if mtype is WSMsgType.CLOSE else "dropped"
                break


class Handshake(ladder.Exchange[web.StreamResponse]):
    """One upgrade request on the ladder (latency, slow, status, hang, reset)."""

    __slots__ = ("owner", "request")

    def __init__(self, owner: ConsumerSockets, request: web.Request, stats: TargetStats, t0: float) -> None:
        super().__init__("connect", stats, t0)
        self.owner = owner
        self.request = request

    async def answer(self, injected: float) -> web.StreamResponse:
        owner, request, stats = self.owner, self.request, self.stats
        account = request.match_info["account"]
        try:
            owner.core.idp.check_account(account)
        except IdpError as exc:
            return owner.reject(stats, exc.status, exc.error, exc.message)
        identity: Identity | None = None
        close_after_accept: int | None = None
        auth = request.headers.get("Authorization")
        if auth is not None:
            token = None
            try:
                token = socket_token(auth)
                identity = owner.core.idp.verify_lp_token(token, account)
            except TokenError as exc:
                if owner.core.config.auth_failure == "http":
                    err = token_error(exc)
                    return owner.reject(stats, err.status, err.error, err.message)
                close_after_accept = rejection_code(exc, token)
        ws = web.WebSocketResponse(autoping=False, autoclose=True, compress=False, max_msg_size=MAX_MSG_SIZE)
        await ws.prepare(request)
        stats.ok += 1
        stats.timing(perf() - self.t0, injected)
        await owner.run(ws, request.transport, account, identity, close_after_accept)
        return ws

    async def status(self, status: int, message: str, fault: FaultSpec, injected: float) -> web.StreamResponse:
        return self.owner.reject(self.stats, status, "injected_fault", message, retry_after(fault))

    async def hang(self, seconds: float) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await self.reset()

    async def reset(self) -> web.StreamResponse:
        self.owner.core.ledger.sockets_rejected += 1
        reset_transport(self.request.transport)
        raise asyncio.CancelledError  # nothing to answer: the connection is gone
