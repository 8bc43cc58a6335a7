"""What each frame on a consumer socket gets: a reply from the session, late or broken as the plan says.

Frames of one socket are handled in order; one with injected latency is answered from its own
task (:meth:`Sockets.spawn`), so later frames and pings are not held up behind it. A request
that cannot be read is answered under the id salvaged from its text
(:func:`~harness.protocol.envelope.salvage_id`), else ``"0"``.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from harness.emulator import ladder
from harness.emulator.core import Core
from harness.emulator.idp import rejection_code
from harness.emulator.ledger import TargetStats
from harness.emulator.sockets import Sock, Sockets
from harness.emulator.state import NO_REQ_ID, Reply, classify, error_reply, string_response
from harness.protocol import messages, tokens
from harness.protocol.envelope import Request, salvage_id
from harness.protocol.messages import Code, MessageType
from harness.protocol.tokens import TokenError

perf = time.perf_counter
MALFORMED_ANSWER = '{"kind":"resp","reqId":<not json>'


class Frames:
    """Requests and pings on the sockets of one process."""

    def __init__(self, core: Core, sockets: Sockets) -> None:
        self.core = core
        self.sockets = sockets

    async def on_frame(self, sock: Sock, text: str | bytes) -> None:
        t0 = perf()
        target, req, detail = classify(text)
        stats = self.core.ledger.arrived(target)
        if self.core.limiter is not None:
            wait = self.core.throttled(sock.session.account)
            if wait is not None:
                req_id = req.id if req is not None else (salvage_id(text, "id") or NO_REQ_ID)
                refusal = error_reply(req_id, Code.TOO_MANY_REQUESTS, f"too many requests: retry after {wait} s")
                await self.sockets.send_reply(sock, stats, refusal, t0, 0.0)
                return
        if self.core.plan.has_any(target):
            await ladder.run(FrameExchange(self, sock, target, stats, t0, req, text, detail), self.core.plan)
            return
        await self.sockets.send_reply(sock, stats, self.answer(sock, req, text, detail), t0, 0.0)

    async def on_ping(self, sock: Sock, data: bytes) -> None:
        t0 = perf()
        ledger = self.core.ledger
        stats = ledger.arrived("ping")
        ledger.pings_received += 1
        if sock.withhold_pongs:  # a hold fault fired: no ping of this socket gets a pong
            stats.fault("no_pong")
            ledger.pings_withheld += 1
            return
        if self.core.plan.has_any("ping"):
            await ladder.run(PingExchange(self.sockets, sock, stats, t0, data), self.core.plan)
        else:
            await _pong(self.core, sock, stats, t0, data, 0.0)

    def answer(self, sock: Sock, req: Request | None, text: str | bytes, detail: str) -> Reply:
        """What the session replies to one frame (a state change happens here)."""
        if req is None:
            return error_reply(salvage_id(text, "id") or NO_REQ_ID, Code.BAD_REQUEST, f"malformed request: {detail}")
        session = sock.session
        if session.consumer is None and req.type == MessageType.INIT_CONNECTION:
            return self._init_connection(sock, req)
        return session.handle(req)

    def _init_connection(self, sock: Sock, req: Request) -> Reply:
        """The header-less flow (T-HDR): InitConnection carries the LP token in ``headers``."""
        token = messages.token_of_init_connection(req.headers)
        try:
            if token is None:
                raise tokens.TokenMalformed("no ConsumerAuthentication header with a jwt")
            identity = self.core.idp.verify_lp_token(token, sock.session.account)
        except TokenError as exc:
            code = rejection_code(exc, token)
            self.sockets.spawn(sock, self.sockets.server_close(sock, code))
            return error_reply(req.id, Code.UNAUTHORIZED, exc.reason)
        self.sockets.authenticated(sock, identity)
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))


class FrameExchange(ladder.Exchange[None]):
    """One request frame on the ladder (latency, slow, code, malformed, truncated, hang, close, reset)."""

    __slots__ = ("frames", "sock", "req", "text", "detail")

    def __init__(
        self,
        frames: Frames,
        sock: Sock,
        target: str,
        stats: TargetStats,
        t0: float,
        req: Request | None,
        text: str | bytes,
        detail: str,
    ) -> None:
        super().__init__(target, stats, t0)
        self.frames = frames
        self.sock = sock
        self.req = req
        self.text = text
        self.detail = detail

    async def defer(self, work: Coroutine[Any, Any, None]) -> None:
        self.frames.sockets.spawn(self.sock, work, self.gone)

    def alive(self) -> bool:
        return self.sock.alive()

    def _reply(self) -> Reply:
        return self.frames.answer(self.sock, self.req, self.text, self.detail)

    def _req_id(self) -> str:
        return self.req.id if self.req is not None else (salvage_id(self.text, "id") or NO_REQ_ID)

    async def _send(self, reply: Reply, injected: float) -> None:
        await self.frames.sockets.send_reply(self.sock, self.stats, reply, self.t0, injected)

    async def answer(self, injected: float) -> None:
        await self._send(self._reply(), injected)

    async def slow(self, delay: float) -> None:
        # Processed now (a conversation is opened), answered that much later: only the answer is
        # slow, so a client that gives up meanwhile leaves the state behind.
        reply = self._reply()
        await self.defer(self._send_later(reply, delay))

    async def _send_later(self, reply: Reply, delay: float) -> None:
        if await ladder.wait_for_answer(self, delay):
            await self._send(reply, delay)

    async def code(self, code: int, message: str, injected: float) -> None:
        await self._send(error_reply(self._req_id(), code, message), injected)

    async def mangle(self, truncated: bool, injected: float) -> None:
        reply = self._reply()  # processed: only the answer is broken
        if truncated:
            frame = reply.frame or string_response(self._req_id(), reply.code, "")
            payload = frame[: max(1, len(frame) // 2)]
        else:
            payload = MALFORMED_ANSWER
        await self.sock.ws.send_str(payload)
        self.stats.timing(perf() - self.t0, injected)

    async def close(self, code: int) -> None:
        await self.frames.sockets.server_close(self.sock, code)

    async def reset(self) -> None:
        self.frames.sockets.reset(self.sock)

    async def hang(self, seconds: float) -> None:
        return None  # never answered


class PingExchange(ladder.Exchange[None]):
    """One ping on the ladder: a pong, a late one (latency, slow) or none (no_pong)."""

    __slots__ = ("sockets", "sock", "data")

    def __init__(self, sockets: Sockets, sock: Sock, stats: TargetStats, t0: float, data: bytes) -> None:
        super().__init__("ping", stats, t0)
        self.sockets = sockets
        self.sock = sock
        self.data = data

    async def defer(self, work: Coroutine[Any, Any, None]) -> None:
        self.sockets.spawn(self.sock, work, self.gone)

    def alive(self) -> bool:
        return self.sock.alive()

    async def answer(self, injected: float) -> None:
        await _pong(self.sockets.core, self.sock, self.stats, self.t0, self.data, injected)

    async def no_pong(self) -> None:
        self.sockets.core.ledger.pings_withheld += 1


async def _pong(core: Core, sock: Sock, stats: TargetStats, t0: float, data: bytes, injected: float) -> None:
    if not sock.alive():  # a ping read as a reset or close fired: nobody is left to answer
        stats.gone += 1
        return
    try:
        await sock.ws.pong(data)
    except ConnectionResetError:  # the transport went down under the write: the same, found a moment later
        stats.gone += 1
        return
    stats.ok += 1
    core.ledger.pings_ponged += 1
    stats.timing(perf() - t0, injected)
