"""The emulator's HTTP and WebSocket layer (aiohttp), thin over plain-Python logic.

IDP logic lives in :mod:`.idp`, conversation state and request handlers in :mod:`.state`,
fault/latency draws in :mod:`.faults`, counters in :mod:`.ledger`. This module reads
requests, asks those, injects what the plan says, writes answers and times them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from harness.emulator import fastlane
from harness.emulator.config import EmulatorConfig
from harness.emulator.faults import ConfigError, FaultPlan, FaultSpec
from harness.emulator.idp import Identity, Idp, IdpError, token_error
from harness.emulator.ledger import Ledger, TargetStats
from harness.emulator.state import (
    Registry,
    Reply,
    Session,
    best_effort_id,
    classify,
    error_reply,
    string_response,
)
from harness.protocol import paths, tokens
from harness.protocol.envelope import Request
from harness.protocol.messages import CloseCode, Code, MessageType, close_reason
from harness.protocol.tokens import TokenError

log = logging.getLogger("lp-emulator")

perf = time.perf_counter
JSON_HEADERS = {"Content-Type": "application/json"}
_dumps = json.JSONEncoder(separators=(",", ":")).encode
CSDS_SERVICES = (paths.IDP_SERVICE, paths.ASYNC_MESSAGING_SERVICE, "liveEngageUI", "accdn", "agentVep")
_LINGER_RESET = struct.pack("ii", 1, 0)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(body).encode(), status=status, headers=headers or JSON_HEADERS)


def error_response(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    merged = dict(JSON_HEADERS)
    if headers:
        merged.update(headers)
    return json_response({"code": status, "error": error, "message": message}, status, merged)


def reset_transport(transport: asyncio.BaseTransport | None) -> None:
    """Abort with SO_LINGER 0, so the peer sees a TCP RST rather than an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- per-socket state
@dataclass(eq=False)
class Sock:
    """One accepted WebSocket: the aiohttp object, its session and its timers."""

    ws: web.WebSocketResponse
    session: Session
    transport: asyncio.BaseTransport | None
    last_activity: float = 0.0
    closed_by: str | None = None  # None | "server" | "reset"
    withhold_pongs: bool = False
    hold_fired: bool = False
    identity: Identity | None = None
    handles: list[asyncio.TimerHandle] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Emulator:
    """Everything one emulator process serves; build the aiohttp app with :meth:`make_app`."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        lp_key: tokens.SigningKey | None = None,
        anon_key: tokens.SigningKey | None = None,
    ) -> None:
        self.config = config
        trusted = [tokens.load_public_key(Path(p).read_bytes()) for p in config.trust_keys]
        if config.trust_tutorial_key:
            trusted.append(tokens.load_public_key(tokens.TUTORIAL_PUBLIC_KEY_PEM))
        from harness.emulator.idp import ANON_KID

        self.idp = Idp(
            lp_key=lp_key or tokens.generate_signing_key(config.key_bits),
            anon_key=anon_key or tokens.generate_signing_key(config.key_bits, kid=ANON_KID),
            trusted_keys=trusted,
            anon_lifetime_s=config.anon_token_lifetime,
            anon_refresh_window_s=config.anon_refresh_window,
            lp_lifetime_s=config.lp_token_lifetime,
            account=config.account,
        )
        self.ledger = Ledger()
        self.registry = Registry(self.ledger)
        self.plan: FaultPlan = config.plan
        self.public_plan: FaultPlan = config.plan  # what GET /admin/faults shows (workers reseed self.plan)
        self.sockets: set[Sock] = set()
        self.lanes: set[fastlane.FastLane] = set()  # open fast-lane connections (closed at stop)
        self.public_host = config.host  # host:port as CSDS answers it; set once bound
        self.url = ""
        self.tls_cert: str | None = None
        self.started = time.time()
        self.worker_index = 0
        self.peers: list[str] = []  # admin URLs of sibling workers (--processes)
        self._last_emfile_log = 0.0

    # ------------------------------------------------------------------ app
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024)
        r = app.router
        r.add_post("/api/account/{account}/anonymous/authorize", self.anonymous_authorize)
        r.add_post("/api/account/{account}/authenticate", self.authenticate)
        r.add_post("/api/account/{account}/app/{connector}/authenticate", self.authenticate)
        r.add_post("/api/account/{account}/signup", self.signup)
        r.add_get("/api/account/{account}/service/{service}/baseURI.json", self.csds)
        r.add_get("/api/account/{account}/service/baseURI.json", self.csds)
        r.add_get("/ws_api/account/{account}/messaging/consumer", self.consumer_socket)
        r.add_get("/admin/ledger", self.admin_ledger)
        r.add_post("/admin/ledger/reset", self.admin_reset)
        r.add_get("/admin/faults", self.admin_get_faults)
        r.add_put("/admin/faults", self.admin_put_faults)
        r.add_get("/admin/health", self.admin_health)
        r.add_route("*", "/{tail:.*}", self.not_found)
        return app

    # ------------------------------------------------------------------ HTTP plumbing
    async def _http(
        self,
        request: web.Request,
        target: str,
        work: Callable[[Any], dict[str, Any]],
        read_body: bool = True,
    ) -> web.StreamResponse:
        """Run one HTTP endpoint: ledger, latency, faults, JSON errors, timing."""
        t0 = perf()
        stats = self.ledger.target(target)
        stats.received += 1
        injected = 0.0
        fault: FaultSpec | None = None
        if self.plan.has_any(target):
            injected, fault = self.plan.decide(target)
            if injected:
                await asyncio.sleep(injected)
            if fault is not None:
                stats.fault(fault.kind)
                if fault.kind == "slow":
                    await asyncio.sleep(fault.get("seconds"))
                    injected += fault.get("seconds")
                else:
                    return await self._http_fault(request, stats, fault, t0, injected, work, read_body)
        try:
            body = await self._read_json(request) if read_body else None
            answer = work(body)
        except IdpError as exc:
            stats.error(exc.status)
            response = json_response(exc.body(), exc.status)
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            stats.error(exc.status)
            response = error_response(exc.status, "invalid_request", exc.reason)
        except Exception:  # never a stack trace to the client
            log.exception("internal error on %s", target)
            stats.error(500)
            response = error_response(500, "internal_error", "the emulator failed; see its log")
        else:
            stats.ok += 1
            response = json_response(answer)
        await response.prepare(request)
        await response.write_eof()
        stats.timing(perf() - t0, injected)
        return response

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        return _decode_body(await request.read())

    async def _http_fault(
        self,
        request: web.Request,
        stats: TargetStats,
        fault: FaultSpec,
        t0: float,
        injected: float,
        work: Callable[[Any], dict[str, Any]],
        read_body: bool,
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind == "status":
            status = fault.get("status")
            stats.error(status)
            message = fault.get("message") or f"injected {status}"
            response = error_response(status, "injected_fault", message, _retry_after(fault))
        elif kind in ("malformed", "truncated"):
            if kind == "malformed":
                payload = b'{"jwt": <not json>'
            else:
                try:
                    body = await self._read_json(request) if read_body else None
                    text = _dumps(work(body)).encode()
                except IdpError as exc:
                    text = _dumps(exc.body()).encode()
                payload = text[: max(1, len(text) // 2)]
            response = web.Response(body=payload, status=200, headers=JSON_HEADERS)
        elif kind == "hang":
            await asyncio.sleep(fault.get("seconds"))
            reset_transport(request.transport)
            raise asyncio.CancelledError  # nothing to answer: the connection is gone
        else:  # reset
            reset_transport(request.transport)
            raise asyncio.CancelledError
        await response.prepare(request)
        await response.write_eof()
        stats.timing(perf() - t0, injected)
        return response

    # ------------------------------------------------------------------ IDP + CSDS
    async def anonymous_authorize(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        return await self._http(
            request, "anonymous-authorize", lambda body: self.idp.anonymous_authorize(account, body)
        )

    async def authenticate(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        return await self._http(request, "authenticate", lambda body: self.idp.authenticate(account, body))

    async def signup(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        return await self._http(request, "signup", lambda _body: self.idp.signup(account), read_body=False)

    async def csds(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        service = request.match_info.get("service")
        version = request.query.get("version")
        return await self._http(
            request, "csds", lambda _body: self.csds_answer(account, service, version), read_body=False
        )

    def csds_answer(self, account: str, service: str | None, version: str | None) -> dict[str, Any]:
        self.idp.check_account(account)
        if version != "1.0":
            raise IdpError(400, "invalid_request", "query parameter version=1.0 is required")
        entry = {"account": account, "baseURI": self.public_host}
        if service is None:
            return {"baseURIs": [{"service": s, **entry} for s in CSDS_SERVICES]}
        if service not in CSDS_SERVICES:
            raise IdpError(404, "unknown_service", f"no service {service!r} (names are case sensitive)")
        return {"service": service, **entry}

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for pattern, methods in _KNOWN:
            if pattern.match(path) and request.method not in methods:
                return error_response(
                    405, "method_not_allowed", f"{request.method} is not allowed here", {"Allow": ", ".join(methods)}
                )
        return error_response(404, "not_found", f"no endpoint {request.method} {path[:200]}")

    # ------------------------------------------------------------------ the consumer socket
    async def consumer_socket(self, request: web.Request) -> web.StreamResponse:
        t0 = perf()
        ledger = self.ledger
        stats = ledger.target("connect")
        stats.received += 1
        account = request.match_info["account"]
        injected = 0.0
        if self.plan.has_any("connect"):
            injected, fault = self.plan.decide("connect")
            if injected:
                await asyncio.sleep(injected)
            if fault is not None:
                stats.fault(fault.kind)
                kind = fault.kind
                if kind == "slow":
                    await asyncio.sleep(fault.get("seconds"))
                    injected += fault.get("seconds")
                elif kind == "status":
                    status = fault.get("status")
                    message = fault.get("message") or f"injected {status}"
                    return self._reject(stats, status, "injected_fault", message, _retry_after(fault))
                elif kind == "hang":
                    await asyncio.sleep(fault.get("seconds"))
                    ledger.sockets_rejected += 1
                    reset_transport(request.transport)
                    raise asyncio.CancelledError
                else:  # reset
                    ledger.sockets_rejected += 1
                    reset_transport(request.transport)
                    raise asyncio.CancelledError
        try:
            self.idp.check_account(account)
        except IdpError as exc:
            return self._reject(stats, exc.status, exc.error, exc.message)
        identity: Identity | None = None
        close_after_accept: int | None = None
        auth = request.headers.get("Authorization")
        if auth is not None:
            scheme, _, token = auth.strip().partition(" ")
            token = token.strip()
            try:
                if scheme.lower() != "jwt" or not token:
                    raise tokens.TokenMalformed("Authorization must be 'jwt <token>'")
                identity = self.idp.verify_lp_token(token, account)
            except TokenError as exc:
                if self.config.auth_failure == "http":
                    err = token_error(exc)
                    return self._reject(stats, err.status, err.error, err.message)
                close_after_accept = _close_code_for(exc, token, self.idp)
        ws = web.WebSocketResponse(autoping=False, autoclose=True, compress=False, max_msg_size=1024 * 1024)
        await ws.prepare(request)
        stats.ok += 1
        stats.timing(perf() - t0, injected)
        await self._run_socket(ws, request.transport, account, identity, close_after_accept)
        return ws

    async def _run_socket(
        self,
        ws: Any,
        transport: asyncio.BaseTransport | None,
        account: str,
        identity: Identity | None,
        close_after_accept: int | None = None,
    ) -> None:
        """The life of one accepted consumer socket (aiohttp's WebSocketResponse or a fast-lane one)."""
        ledger = self.ledger
        ledger.socket_opened()
        loop = asyncio.get_running_loop()
        session = Session(self.registry, account)
        sock = Sock(ws, session, transport, loop.time())
        self.sockets.add(sock)
        try:
            if close_after_accept is not None:
                await self._server_close(sock, close_after_accept)
                return
            if identity is not None:
                self._authenticated(sock, identity)
            else:
                sock.handles.append(loop.call_later(self.config.init_timeout, self._init_missed, sock))
            self._start_hold(sock, loop)
            sock.handles.append(loop.call_at(sock.last_activity + self.config.idle_timeout, self._idle_check, sock))
            await self._read_loop(sock, loop)
        except asyncio.CancelledError:
            if sock.closed_by is None:
                sock.closed_by = "dropped"
            raise
        finally:
            self._socket_done(sock)

    # ------------------------------------------------------------------ fast lane (fastlane.py)
    def fast_idp(self, transport: asyncio.Transport, target: str, account: str, raw: bytes, close: bool = False) -> None:
        """``_http`` for an IDP request the fast lane read (no latency/fault configured for it)."""
        t0 = perf()
        stats = self.ledger.target(target)
        stats.received += 1
        try:
            body = _decode_body(raw)
            if target == "anonymous-authorize":
                answer = self.idp.anonymous_authorize(account, body)
            else:
                answer = self.idp.authenticate(account, body)
        except IdpError as exc:
            stats.error(exc.status)
            status, payload = exc.status, exc.body()
        except Exception:  # never a stack trace to the client
            log.exception("internal error on %s", target)
            stats.error(500)
            status = 500
            payload = {"code": 500, "error": "internal_error", "message": "the emulator failed; see its log"}
        else:
            stats.ok += 1
            status, payload = 200, answer
        transport.write(fastlane.json_answer(status, _dumps(payload).encode(), close))
        stats.timing(perf() - t0, 0.0)

    def fast_identity(self, auth: bytes, account: str) -> Identity | None:
        """The identity of a handshake's ``Authorization`` header, or None (aiohttp then refuses it)."""
        try:
            self.idp.check_account(account)
        except IdpError:
            return None
        scheme, _, token = auth.decode("utf-8", "surrogateescape").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "jwt" or not token:
            return None
        try:
            return self.idp.verify_lp_token(token, account)
        except TokenError:
            return None

    async def fast_socket(
        self, ws: Any, transport: asyncio.BaseTransport | None, account: str, identity: Identity, t0: float
    ) -> None:
        """``consumer_socket`` after the fast lane accepted the handshake (101 already written)."""
        stats = self.ledger.target("connect")
        stats.received += 1
        stats.ok += 1
        stats.timing(perf() - t0, 0.0)
        await self._run_socket(ws, transport, account, identity)

    def _reject(
        self, stats: TargetStats, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        stats.error(status)
        self.ledger.sockets_rejected += 1
        return error_response(status, error, message, headers)

    def _authenticated(self, sock: Sock, identity: Identity) -> None:
        sock.identity = identity
        sock.session.authenticate(identity.consumer_id, identity.anonymous)
        loop = asyncio.get_running_loop()
        delay = max(0.0, identity.exp - time.time())
        sock.handles.append(loop.call_later(delay, self._expired, sock))

    async def _read_loop(self, sock: Sock, loop: asyncio.AbstractEventLoop) -> None:
        ws = sock.ws
        while True:
            msg = await ws.receive()
            sock.last_activity = loop.time()
            mtype = msg.type
            if mtype is WSMsgType.TEXT or mtype is WSMsgType.BINARY:
                await self._on_frame(sock, msg.data)
            elif mtype is WSMsgType.PING:
                await self._on_ping(sock, msg.data)
            elif mtype is WSMsgType.PONG:
                continue
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if sock.closed_by is None:
                    sock.closed_by = "client" if mtype is WSMsgType.CLOSE else "dropped"
                break

    def _socket_done(self, sock: Sock) -> None:
        for handle in sock.handles:
            handle.cancel()
        for task in sock.tasks:
            task.cancel()
        self.sockets.discard(sock)
        sock.session.close()
        ledger = self.ledger
        ledger.socket_closed()
        if sock.closed_by == "client":
            ledger.closed_by_client += 1
        elif sock.closed_by == "dropped":
            ledger.closed_by_client += 1
            ledger.client_dropped += 1
        hold = ledger.targets.get("hold")
        if hold is not None and not sock.hold_fired and sock.closed_by != "reset":
            hold.ok += 1

    def _spawn(self, sock: Sock, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        sock.tasks.add(task)
        task.add_done_callback(sock.tasks.discard)

    async def _server_close(self, sock: Sock, code: int, *, idle: bool = False) -> None:
        if sock.closed_by is not None or sock.ws.closed:
            return
        sock.closed_by = "server"
        self.ledger.server_close(code)
        if idle:
            self.ledger.idle_closed += 1
        await sock.ws.close(code=code, message=close_reason(code).encode()[:120])

    def _reset(self, sock: Sock) -> None:
        if sock.closed_by is not None:
            return
        sock.closed_by = "reset"
        self.ledger.sockets_reset += 1
        reset_transport(sock.transport)

    # timers ---------------------------------------------------------------------
    def _idle_check(self, sock: Sock) -> None:
        if sock.closed_by is not None:
            return
        loop = asyncio.get_running_loop()
        due = sock.last_activity + self.config.idle_timeout
        if loop.time() >= due:
            self._spawn(sock, self._server_close(sock, CloseCode.POLICY_VIOLATION, idle=True))
        else:
            sock.handles.append(loop.call_at(due, self._idle_check, sock))
            if len(sock.handles) > 8:
                sock.handles = [h for h in sock.handles if not h.cancelled() and h.when() >= loop.time()]

    def _expired(self, sock: Sock) -> None:
        if sock.identity is not None:
            self._spawn(sock, self._server_close(sock, sock.identity.expiry_close_code))

    def _init_missed(self, sock: Sock) -> None:
        if sock.identity is None:
            self._spawn(sock, self._server_close(sock, CloseCode.TOKEN_EXPIRED))

    def _start_hold(self, sock: Sock, loop: asyncio.AbstractEventLoop) -> None:
        if not self.plan.has_any("hold"):
            return
        stats = self.ledger.target("hold")
        stats.received += 1
        _delay, fault = self.plan.decide("hold")
        if fault is None:
            return

        def fire() -> None:
            if sock.closed_by is not None:
                return
            sock.hold_fired = True
            stats.fault(fault.kind)
            if fault.kind == "close":
                self._spawn(sock, self._server_close(sock, fault.get("code")))
            elif fault.kind == "reset":
                self._reset(sock)
            else:  # no_pong
                sock.withhold_pongs = True

        after = fault.get("after") or 0.0
        if after <= 0 and fault.kind == "no_pong":
            fire()
        else:
            sock.handles.append(loop.call_later(after, fire))

    # frames ---------------------------------------------------------------------
    async def _on_ping(self, sock: Sock, data: bytes) -> None:
        t0 = perf()
        ledger = self.ledger
        stats = ledger.target("ping")
        stats.received += 1
        ledger.pings_received += 1
        injected = 0.0
        if sock.withhold_pongs:
            stats.fault("no_pong")
            ledger.pings_withheld += 1
            return
        if self.plan.has_any("ping"):
            injected, fault = self.plan.decide("ping")
            if fault is not None:
                stats.fault(fault.kind)
                if fault.kind == "no_pong":
                    ledger.pings_withheld += 1
                    return
                injected += fault.get("seconds")
            if injected:
                self._spawn(sock, self._pong_later(sock, data, t0, injected))
                return
        await sock.ws.pong(data)
        stats.ok += 1
        ledger.pings_ponged += 1
        stats.timing(perf() - t0, 0.0)

    async def _pong_later(self, sock: Sock, data: bytes, t0: float, delay: float) -> None:
        await asyncio.sleep(delay)
        if sock.closed_by is not None or sock.ws.closed:
            return
        await sock.ws.pong(data)
        stats = self.ledger.target("ping")
        stats.ok += 1
        self.ledger.pings_ponged += 1
        stats.timing(perf() - t0, delay)

    async def _on_frame(self, sock: Sock, text: str | bytes) -> None:
        t0 = perf()
        target, req, detail = classify(text)
        stats = self.ledger.target(target)
        stats.received += 1
        if self.plan.has_any(target):
            delay, fault = self.plan.decide(target)
            if fault is not None and fault.kind == "slow":
                # Processed now (a conversation is opened), answered that much later: only the
                # answer is slow, so a client that gives up meanwhile leaves the state behind.
                stats.fault("slow")
                reply = self._answer(sock, target, req, text, detail)
                self._spawn(sock, self._reply_later(sock, stats, reply, t0, delay + fault.get("seconds")))
                return
            if delay > 0:
                self._spawn(sock, self._frame_later(sock, t0, stats, target, req, text, detail, delay, fault))
                return
            if fault is not None:
                await self._frame_fault(sock, t0, stats, target, req, text, detail, 0.0, fault)
                return
        reply = self._answer(sock, target, req, text, detail)
        await self._send_reply(sock, stats, reply, t0, 0.0)

    async def _frame_later(
        self,
        sock: Sock,
        t0: float,
        stats: TargetStats,
        target: str,
        req: Request | None,
        text: str | bytes,
        detail: str,
        delay: float,
        fault: FaultSpec | None,
    ) -> None:
        await asyncio.sleep(delay)
        if sock.closed_by is not None or sock.ws.closed:
            return
        if fault is not None:
            await self._frame_fault(sock, t0, stats, target, req, text, detail, delay, fault)
            return
        await self._send_reply(sock, stats, self._answer(sock, target, req, text, detail), t0, delay)

    async def _reply_later(self, sock: Sock, stats: TargetStats, reply: Reply, t0: float, delay: float) -> None:
        await asyncio.sleep(delay)
        if sock.closed_by is None and not sock.ws.closed:
            await self._send_reply(sock, stats, reply, t0, delay)

    def _answer(self, sock: Sock, target: str, req: Request | None, text: str | bytes, detail: str) -> Reply:
        if req is None:
            return error_reply(best_effort_id(text), Code.BAD_REQUEST, f"malformed request: {detail}")
        session = sock.session
        if session.consumer is None and req.type == MessageType.INIT_CONNECTION:
            return self._init_connection(sock, req)
        return session.handle(req)

    def _init_connection(self, sock: Sock, req: Request) -> Reply:
        """The header-less flow (T-HDR): InitConnection carries the LP token in ``headers``."""
        token = None
        headers = req.headers if isinstance(req.headers, list) else [req.headers]
        for header in headers:
            if isinstance(header, dict) and "ConsumerAuthentication" in str(header.get("type", "")):
                token = header.get("jwt")
        try:
            if not isinstance(token, str) or not token:
                raise tokens.TokenMalformed("no ConsumerAuthentication header with a jwt")
            identity = self.idp.verify_lp_token(token, sock.session.account)
        except TokenError as exc:
            code = _close_code_for(exc, token if isinstance(token, str) else "", self.idp)
            self._spawn(sock, self._server_close(sock, code))
            return error_reply(req.id, Code.UNAUTHORIZED, exc.reason)
        self._authenticated(sock, identity)
        return Reply(Code.OK, string_response(req.id, Code.OK, "OK"))

    async def _send_reply(self, sock: Sock, stats: TargetStats, reply: Reply, t0: float, injected: float) -> None:
        ws = sock.ws
        if reply.frame is not None:
            await ws.send_str(reply.frame)
        code = reply.code
        if 200 <= code < 300:
            stats.ok += 1
        else:
            stats.error(code)
        stats.timing(perf() - t0, injected)
        for other, note in reply.notifications:
            other_sock = self._sock_of(other) if other is not sock.session else sock
            if other_sock is not None and not other_sock.ws.closed:
                await other_sock.ws.send_str(note)

    def _sock_of(self, session: Session) -> Sock | None:
        for sock in self.sockets:
            if sock.session is session:
                return sock
        return None

    async def _frame_fault(
        self,
        sock: Sock,
        t0: float,
        stats: TargetStats,
        target: str,
        req: Request | None,
        text: str | bytes,
        detail: str,
        injected: float,
        fault: FaultSpec,
    ) -> None:
        kind = fault.kind
        stats.fault(kind)
        ws = sock.ws
        req_id = req.id if req is not None else best_effort_id(text)
        if kind == "code":
            code = fault.get("code")
            await self._send_reply(
                sock, stats, error_reply(req_id, code, fault.get("message") or f"injected {code}"), t0, injected
            )
        elif kind in ("malformed", "truncated"):
            reply = self._answer(sock, target, req, text, detail)
            frame = reply.frame or string_response(req_id, reply.code, "")
            payload = '{"kind":"resp","reqId":<not json>' if kind == "malformed" else frame[: max(1, len(frame) // 2)]
            await ws.send_str(payload)
            stats.timing(perf() - t0, injected)
        elif kind == "close":
            await self._server_close(sock, fault.get("code"))
        elif kind == "reset":
            self._reset(sock)
        # hang: no answer at all

    # ------------------------------------------------------------------ admin
    async def admin_ledger(self, request: web.Request) -> web.StreamResponse:
        return json_response(await self.ledger_snapshot(request.query.get("local") == "1"))

    async def ledger_snapshot(self, local_only: bool = False) -> dict[str, Any]:
        snap = self.ledger.snapshot()
        if local_only or not self.peers:
            return snap
        from harness.emulator.workers import gather_ledgers

        return await gather_ledgers(snap, self.peers)

    async def admin_reset(self, request: web.Request) -> web.StreamResponse:
        self.ledger.reset()
        if request.query.get("local") != "1" and self.peers:
            from harness.emulator.workers import broadcast

            await broadcast(self.peers, "POST", "/admin/ledger/reset?local=1")
        return json_response({"ok": True, "since": self.ledger.since})

    async def admin_get_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.public_plan.to_json())

    async def admin_put_faults(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            cfg = json.loads(raw) if raw.strip() else {}
            plan = FaultPlan.from_json(cfg)
        except ValueError as exc:  # ConfigError and JSON errors
            message = str(exc) if isinstance(exc, ConfigError) else f"not valid JSON: {exc}"
            return error_response(400, "invalid_config", message)
        self.plan = plan.with_worker(self.worker_index) if self.peers else plan
        self.public_plan = plan
        if request.query.get("local") != "1" and self.peers:
            from harness.emulator.workers import broadcast

            await broadcast(self.peers, "PUT", "/admin/faults?local=1", raw)
        log.info("fault/latency configuration replaced: %s", _dumps(plan.to_json())[:500])
        return json_response(plan.to_json())

    async def admin_health(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "ok": True,
                "pid": os.getpid(),
                "url": self.url,
                "uptime_s": round(time.time() - self.started, 3),
                "sockets_open": self.ledger.sockets_open,
                "workers": 1 + len(self.peers),
                "tls_cert": self.tls_cert,
                "account": self.config.account,
            }
        )

    # ------------------------------------------------------------------ EMFILE
    def _log_emfile(self, how: str, err: int) -> None:
        now = time.monotonic()
        if now - self._last_emfile_log < 5.0:
            return
        self._last_emfile_log = now
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        log.error(
            "OUT OF FILE DESCRIPTORS (%s, %s): the listener cannot accept new connections; "
            "open sockets=%d, RLIMIT_NOFILE soft=%d hard=%d (accept errors %d, limit hits %d)",
            errno.errorcode.get(err, err),
            how,
            self.ledger.sockets_open,
            soft,
            hard,
            self.ledger.accept_errors,
            self.ledger.fd_limit_hits,
        )

    async def fd_monitor(self, probe_fd: int, interval: float = 0.5) -> None:
        """Notice the open-file limit even where the loop hides accept() failures.

        uvloop (libuv) answers EMFILE on accept by accepting and closing the pending
        connections itself, without telling Python; so probe with dup() twice a second.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                os.close(os.dup(probe_fd))
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self.ledger.fd_limit_hits += 1
                    self._log_emfile("probe: new connections are being dropped", exc.errno)

    def loop_exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            self.ledger.accept_errors += 1
            self._log_emfile("accept() failed", exc.errno)
            return
        loop.default_exception_handler(context)


def _decode_body(raw: bytes) -> Any:
    """An IDP request body: None when empty, else JSON (IdpError 400 when it is not)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise IdpError(400, "invalid_json", "the body is not valid JSON") from None


def _retry_after(fault: FaultSpec) -> dict[str, str] | None:
    """The Retry-After header of an injected status (429 gets 1 s unless told otherwise)."""
    retry_after = fault.get("retry_after")
    if retry_after is None and fault.get("status") == 429:
        retry_after = 1
    return None if retry_after is None else {"Retry-After": str(max(0, round(retry_after)))}


def _close_code_for(exc: TokenError, token: str, idp: Idp) -> int:
    """4407 for an expired token that stood for an anonymous identity, else 4401."""
    if isinstance(exc, tokens.TokenExpired) and token:
        try:
            ext = tokens.unverified_claims(token).get("lp.ext")
        except TokenError:
            ext = None
        if isinstance(ext, dict) and ext.get("lp_anon") is True:
            return CloseCode.IDENTITY_EXPIRED
    return CloseCode.TOKEN_EXPIRED


_KNOWN = [
    (re.compile(r"^/api/account/[^/]+/(anonymous/authorize|authenticate|signup|app/[^/]+/authenticate)$"), ("POST",)),
    (re.compile(r"^/api/account/[^/]+/service/([^/]+/)?baseURI\.json$"), ("GET", "HEAD")),
    (re.compile(r"^/ws_api/account/[^/]+/messaging/consumer$"), ("GET", "HEAD")),
    (re.compile(r"^/admin/(ledger|health)$"), ("GET", "HEAD")),
    (re.compile(r"^/admin/faults$"), ("GET", "HEAD", "PUT")),
    (re.compile(r"^/admin/ledger/reset$"), ("POST",)),
]
