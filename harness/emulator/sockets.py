"""The accepted consumer sockets: their timers, how they end, and how replies reach them.

Every accepted socket (aiohttp's ``WebSocketResponse`` or the fast lane's ``FastSocket``) is a
:class:`Sock` here from accept to close. Its timers: the idle check (re-armed only when it
fires, from :func:`~harness.protocol.keepalive.idle_deadline`), the token's expiry
(:func:`~harness.protocol.keepalive.expires_in`), the InitConnection grace on a socket opened
without ``Authorization``, and a hold fault drawn at accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from harness.emulator.core import Core
from harness.emulator.fastsocket import FastSocket
from harness.emulator.idp import Identity
from harness.emulator.ledger import TargetStats
from harness.emulator.session import Session
from harness.emulator.state import Notes, Reply
from harness.emulator.wire import reset_transport
from harness.protocol.closing import CloseCode, close_reason, truncate_utf8
from harness.protocol.keepalive import expires_in, idle_deadline, is_idle

STOPPING_REASON = "emulator stopping"
_MAX_HANDLES = 8  # idle re-arms kept before the done ones are dropped


@dataclass(eq=False)
class Sock:
    """One accepted WebSocket: the socket object, its session and its timers."""

    ws: web.WebSocketResponse | FastSocket
    session: Session
    transport: asyncio.BaseTransport | None
    last_activity: float = 0.0  # loop time of the last frame from the client
    closed_by: str | None = None  # None | "server" | "reset" | "client" | "dropped"
    withhold_pongs: bool = False
    hold_fired: bool = False
    identity: Identity | None = None
    handles: list[asyncio.TimerHandle] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def alive(self) -> bool:
        """Still open: no close or reset of ours, and not closed underneath us."""
        return self.closed_by is None and not self.ws.closed


class Sockets:
    """The open sockets of one process and what can happen to each."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.open: set[Sock] = set()
        self.by_session: dict[Session, Sock] = {}  # whose socket a notification for a session goes to
        core.registry.deliver = self.deliver

    # ------------------------------------------------------------------ life
    def opened(
        self, ws: web.WebSocketResponse | FastSocket, transport: asyncio.BaseTransport | None, account: str
    ) -> Sock:
        self.core.ledger.socket_opened()
        loop = asyncio.get_running_loop()
        sock = Sock(ws, Session(self.core.registry, account), transport, loop.time())
        self.open.add(sock)
        self.by_session[sock.session] = sock
        return sock

    def arm(self, sock: Sock, identity: Identity | None) -> None:
        """The timers of a socket accepted with ``identity`` (None: InitConnection is due)."""
        loop = asyncio.get_running_loop()
        config = self.core.config
        if identity is not None:
            self.authenticated(sock, identity)
        else:
            sock.handles.append(loop.call_later(config.init_timeout, self._init_missed, sock))
        self._start_hold(sock, loop)
        due = idle_deadline(sock.last_activity, config.idle_timeout)
        sock.handles.append(loop.call_at(due, self._idle_check, sock))

    def authenticated(self, sock: Sock, identity: Identity) -> None:
        sock.identity = identity
        sock.session.authenticate(identity.consumer_id, identity.anonymous)
        delay = expires_in(identity.exp, time.time())
        sock.handles.append(asyncio.get_running_loop().call_later(delay, self._expired, sock))

    def done(self, sock: Sock) -> None:
        """The socket is gone, however it ended: stop its timers and tasks, count how it ended."""
        for handle in sock.handles:
            handle.cancel()
        for task in sock.tasks:
            task.cancel()
        self.open.discard(sock)
        self.by_session.pop(sock.session, None)
        sock.session.close()
        ledger = self.core.ledger
        ledger.socket_closed()
        if sock.closed_by == "client":
            ledger.closed_by_client += 1
        elif sock.closed_by == "dropped":
            ledger.closed_by_client += 1
            ledger.client_dropped += 1
        hold = ledger.targets.get("hold")
        if hold is not None and not sock.hold_fired:  # ended without its hold fault (a frame's reset too)
            hold.ok += 1

    def spawn(self, sock: Sock, coro: Coroutine[Any, Any, Any], on_cancel: Callable[[], None] | None = None) -> None:
        """Run ``coro`` beside the socket's reads; cancelled when the socket ends (then ``on_cancel``:
        a task cancelled before its first step never runs a line of ``coro``, so it cannot say so)."""
        task = asyncio.ensure_future(coro)
        sock.tasks.add(task)
        task.add_done_callback(sock.tasks.discard)
        if on_cancel is not None:
            task.add_done_callback(lambda done: on_cancel() if done.cancelled() else None)

    # ------------------------------------------------------------------ endings
    async def server_close(self, sock: Sock, code: int, *, idle: bool = False) -> None:
        if not sock.alive():
            return
        sock.closed_by = "server"
        self.core.ledger.server_close(code)
        if idle:
            self.core.ledger.idle_closed += 1
        await sock.ws.close(code=code, message=truncate_utf8(close_reason(code)))

    def reset(self, sock: Sock) -> None:
        if sock.closed_by is not None:
            return
        sock.closed_by = "reset"
        self.core.ledger.sockets_reset += 1
        reset_transport(sock.transport)

    async def close_all(self, grace_s: float) -> None:
        """Close every open socket with 1001 (the emulator is stopping), waiting up to ``grace_s``."""
        socks = list(self.open)
        if not socks:
            return
        for sock in socks:
            if sock.closed_by is None:
                sock.closed_by = "server"
                self.core.ledger.server_close(CloseCode.GOING_AWAY)
        message = truncate_utf8(STOPPING_REASON)
        closes = [s.ws.close(code=CloseCode.GOING_AWAY, message=message) for s in socks]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), grace_s)

    # ------------------------------------------------------------------ replies
    async def send_reply(self, sock: Sock, stats: TargetStats, reply: Reply, t0: float, injected: float) -> None:
        """Send a reply's response (counted and timed), then its notifications to whichever sockets."""
        if reply.frame is not None:
            await sock.ws.send_str(reply.frame)
        stats.answered(reply.code)
        stats.timing(time.perf_counter() - t0, injected)
        for other, note in reply.notifications:
            other_sock = self.by_session.get(other) if other is not sock.session else sock  # type: ignore[call-overload]
            if other_sock is not None and not other_sock.ws.closed:
                await other_sock.ws.send_str(note)

    def deliver(self, notes: Notes) -> None:
        """Notifications made outside a request (an agent's reply, a queued conversation's agent): each
        socket's frames sent in order, from a task of that socket."""
        frames: dict[Sock, list[str]] = {}
        for session, note in notes:
            sock = self.by_session.get(session)  # type: ignore[call-overload]
            if sock is not None and sock.alive():
                frames.setdefault(sock, []).append(note)
        for sock, texts in frames.items():
            self.spawn(sock, _send_all(sock, texts))

    # ------------------------------------------------------------------ timers
    def _idle_check(self, sock: Sock) -> None:
        if sock.closed_by is not None:
            return
        loop = asyncio.get_running_loop()
        now, timeout = loop.time(), self.core.config.idle_timeout
        if is_idle(now, sock.last_activity, timeout):
            self.spawn(sock, self.server_close(sock, CloseCode.POLICY_VIOLATION, idle=True))
            return
        sock.handles.append(loop.call_at(idle_deadline(sock.last_activity, timeout), self._idle_check, sock))
        if len(sock.handles) > _MAX_HANDLES:
            sock.handles = [h for h in sock.handles if not h.cancelled() and h.when() >= now]

    def _expired(self, sock: Sock) -> None:
        if sock.identity is not None:
            self.spawn(sock, self.server_close(sock, sock.identity.expiry_close_code))

    def _init_missed(self, sock: Sock) -> None:
        if sock.identity is None:
            self.spawn(sock, self.server_close(sock, CloseCode.TOKEN_EXPIRED))

    def _start_hold(self, sock: Sock, loop: asyncio.AbstractEventLoop) -> None:
        """Draw the socket's hold fault (if any is configured); it fires ``after`` s, counted then."""
        plan = self.core.plan
        if not plan.has_any("hold"):
            return
        stats = self.core.ledger.arrived("hold")
        _delay, fault = plan.decide("hold")
        if fault is None:
            return

        def fire() -> None:
            if sock.closed_by is not None:
                return
            sock.hold_fired = True
            stats.fault(fault.kind)
            if fault.kind == "close":
                self.spawn(sock, self.server_close(sock, fault.get("code")))
            elif fault.kind == "reset":
                self.reset(sock)
            else:  # no_pong
                sock.withhold_pongs = True

        after = fault.get("after") or 0.0
        if after <= 0 and fault.kind == "no_pong":
            fire()
        else:
            sock.handles.append(loop.call_later(after, fire))


async def _send_all(sock: Sock, texts: list[str]) -> None:
    for text in texts:
        if sock.ws.closed:
            return
        await sock.ws.send_str(text)
