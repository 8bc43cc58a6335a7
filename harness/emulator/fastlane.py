"""A fast lane in front of aiohttp for the requests every consumer flow makes (plain HTTP only).

Why: aiohttp's per-request and per-connection machinery (request objects, a task per
request, the router, response objects, the WebSocketResponse handshake) cost more CPU per
consumer flow than RSA signing did, which kept one emulator process under the 1,500 flows/s
target (bench/results/emulator-capacity.md). This protocol reads each new connection first
and serves, itself, only the exact common shapes:

- ``POST`` to :data:`~harness.protocol.paths.ANONYMOUS_AUTHORIZE` and both forms of
  ``authenticate``, HTTP/1.1, a Content-Length body (or none) within ``client_max_size``;
- the consumer WebSocket upgrade (:data:`~harness.protocol.paths.CONSUMER_SOCKET`) with a valid
  ``Authorization: jwt`` token.

and only while no latency or fault is configured for that target. Anything else -- another
path or method, HTTP/1.0, chunked bodies, ``Expect``, duplicated
headers, a refused handshake, an unknown account, any injected latency or fault -- is handed,
bytes and all, to aiohttp's own request handler for the rest of the connection, so every
error and fault is produced by the same code as before. The answers are byte-for-byte what
aiohttp writes (same status line, headers, ``Date``/``Server``); the answer itself, the ledger,
state and timers come from the emulator through :class:`Hooks`, the same handlers aiohttp's
routes call. After the upgrade the socket is a :class:`~harness.emulator.fastsocket.FastSocket`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from time import perf_counter

from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive

from harness.emulator.fastsocket import FastSocket
from harness.emulator.idp import Identity
from harness.protocol import handshake, paths
from harness.protocol.paths import Route

log = logging.getLogger("lp-emulator")

MAX_BODY = 256 * 1024  # the aiohttp app's client_max_size
MAX_HEAD = 16 * 1024
KEEPALIVE_S = 75.0  # aiohttp's keepalive_timeout default
_SERVER = SERVER_SOFTWARE.encode()
_WS_VERSION = handshake.WS_VERSION.encode()
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_RAW_SEGMENT = "[^/{}%]+"  # a parameter the fast lane takes as it is (percent-encoded ones go to aiohttp)
FAST_ROUTES = (paths.ANONYMOUS_AUTHORIZE, paths.AUTHENTICATE, paths.CONNECTOR_AUTHENTICATE, paths.CONSUMER_SOCKET)


def raw_target_pattern(routes: Sequence[Route]) -> tuple[re.Pattern[bytes], dict[str, tuple[Route, str]]]:
    """One bytes regex for the raw paths of ``routes``, and, per alternative's group name, its route
    and the group of its ``account``: a request target is matched once, without decoding it."""
    alternatives = []
    groups: dict[str, tuple[Route, str]] = {}
    for i, route in enumerate(routes):
        alternatives.append(f"(?P<route{i}>{route.pattern(_RAW_SEGMENT, suffix=str(i))})")
        groups[f"route{i}"] = (route, f"account{i}")
    return re.compile("|".join(alternatives).encode()), groups


_FAST_PATHS, _ROUTE_OF = raw_target_pattern(FAST_ROUTES)


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the fast lane asks of the emulator, as callables: it imports none of the emulator's layers."""

    injects: Callable[[str], bool]  # latency or a fault configured for this target now?
    serve_idp: Callable[[asyncio.Transport, str, str, bytes, bool], None]  # (transport, target, account, body, close)
    identity: Callable[[str, str], Identity | None]  # (Authorization value, account): None = let aiohttp refuse it
    serve_socket: Callable[[FastSocket, asyncio.Transport, str, Identity, float], Awaitable[None]]


def _head(status: int, extra: bytes) -> bytes:
    return b"HTTP/1.1 %d %s\r\n%sDate: %s\r\nServer: %s\r\n\r\n" % (
        status,
        _REASONS.get(status, b""),
        extra,
        rfc822_formatted_time().encode(),
        _SERVER,
    )


def json_answer(status: int, payload: bytes, close: bool = False) -> bytes:
    """What ``web.Response(body=payload, status=status, headers=JSON_HEADERS)`` puts on the wire.

    ``close``: the request said ``Connection: close``; aiohttp then adds ``Connection: close``
    and closes the connection after the answer (the server's close: TIME_WAIT stays here).
    """
    extra = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(payload)
    if close:
        extra += b"Connection: close\r\n"
    return _head(status, extra) + payload


class FastLane(BaseProtocol):
    """First protocol of every plain-HTTP connection (see the module docstring)."""

    __slots__ = ("hooks", "factory", "lanes", "buf", "ws", "task", "handle", "last_used", "ignore")

    def __init__(self, hooks: Hooks, factory: Callable[[], asyncio.Protocol], lanes: set[FastLane]) -> None:
        super().__init__(asyncio.get_running_loop())
        self.hooks = hooks
        self.factory = factory  # aiohttp's RequestHandler factory (the web.Server)
        self.lanes = lanes
        self.buf = bytearray()
        self.ws: FastSocket | None = None
        self.task: asyncio.Task[None] | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.last_used = 0.0
        self.ignore = False

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # TCP_NODELAY, as aiohttp
        tcp_keepalive(transport)  # type: ignore[arg-type]
        self.lanes.add(self)
        self.last_used = self._loop.time()
        self.handle = self._loop.call_at(self.last_used + KEEPALIVE_S, self._keepalive)

    def _keepalive(self) -> None:
        """Close an idle keep-alive connection after 75 s, as aiohttp does."""
        self.handle = None
        if self.ws is not None or self.transport is None:
            return
        due = self.last_used + KEEPALIVE_S
        if self._loop.time() >= due:
            self.transport.close()
        else:
            self.handle = self._loop.call_at(due, self._keepalive)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.lanes.discard(self)
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        ws = self.ws
        if ws is not None:
            # As aiohttp with handler_cancellation: cancel the socket's handler, then EOF.
            if self.task is not None and not self.task.done():
                self.task.cancel()
            ws.reader.feed_eof()

    def eof_received(self) -> None:
        return None  # let the transport close; connection_lost follows

    def close(self) -> None:
        """Close the connection (emulator shutdown)."""
        if self.transport is not None:
            self.transport.close()

    def handoff(self) -> None:
        """Give this connection (and every byte read so far) to aiohttp for good."""
        transport = self.transport
        self.lanes.discard(self)
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if transport is None:
            return
        self.transport = None
        self.ignore = True
        proto = self.factory()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            proto.data_received(data)

    # ------------------------------------------------------------------ reading
    def data_received(self, data: bytes) -> None:
        if self.ignore:
            return
        ws = self.ws
        if ws is not None:
            eof, _tail = ws.reader.feed_data(data)
            if eof:
                self.ignore = True
            return
        self.buf += data
        self._process()

    def _process(self) -> None:
        """Serve every complete request in the buffer, or hand the connection over."""
        while self.transport is not None and self.ws is None:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.handoff()
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            request_line = lines[0].split(b" ")
            if len(request_line) != 3 or request_line[2] != b"HTTP/1.1":
                self.handoff()
                return
            method, target, _ = request_line
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                key = name.lower()
                if not sep or not name or b" " in name or b"\t" in name or key in headers:
                    self.handoff()
                    return
                headers[key] = value.strip(b" \t")
            m = _FAST_PATHS.fullmatch(target.partition(b"?")[0])
            if m is None or b"transfer-encoding" in headers or b"expect" in headers:
                self.handoff()
                return
            route, account_group = _ROUTE_OF[m.lastgroup]  # type: ignore[index]
            account = _account(m.group(account_group))
            connection = headers.get(b"connection", b"").lower()
            if route is paths.CONSUMER_SOCKET:
                if (
                    method != b"GET"
                    or b"upgrade" not in connection
                    or b"content-length" in headers
                    or account is None
                    or not self._upgrade(account, headers)
                ):
                    self.handoff()
                return
            length = headers.get(b"content-length", b"0")
            if (
                method != b"POST"
                or b"upgrade" in headers
                or not length.isdigit()
                or int(length) > MAX_BODY
                or account is None
                or self.hooks.injects(route.target)
            ):
                self.handoff()
                return
            total = end + 4 + int(length)
            if len(buf) < total:
                return  # wait for the body
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            self.last_used = self._loop.time()
            close = b"close" in connection
            self.hooks.serve_idp(self.transport, route.target, account, body, close)
            if close:  # as aiohttp: answer, then close (what follows on this connection is ignored)
                _send_fin_now(self.transport)
                self.transport.close()
                return

    def _upgrade(self, account: str, headers: dict[bytes, bytes]) -> bool:
        """Accept the consumer socket here if the handshake is the plain good one; else False."""
        t0 = perf_counter()
        hooks = self.hooks
        if (
            headers.get(b"upgrade", b"").lower() != b"websocket"
            or b"upgrade" not in [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
            or headers.get(b"sec-websocket-version") != _WS_VERSION
            or b"sec-websocket-protocol" in headers
            or hooks.injects(paths.CONSUMER_SOCKET.target)
        ):
            return False
        key = headers.get(b"sec-websocket-key", b"")
        auth = headers.get(b"authorization")
        if auth is None or not handshake.valid_client_key(key):
            return False
        identity = hooks.identity(auth.decode("utf-8", "surrogateescape"), account)
        if identity is None:
            return False  # aiohttp refuses it (and counts it) the documented way
        transport = self.transport
        assert transport is not None
        transport.write(
            _head(
                101,
                b"Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                % handshake.accept_key(key),
            )
        )
        self._upgraded = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.ws = ws = FastSocket(self, transport)
        self.task = asyncio.ensure_future(self._serve(ws, account, identity, t0))
        tail = bytes(self.buf[self.buf.find(b"\r\n\r\n") + 4 :])
        if tail:
            eof, _ = ws.reader.feed_data(tail)
            if eof:
                self.ignore = True
        self.buf = bytearray()
        return True

    async def _serve(self, ws: FastSocket, account: str, identity: Identity, t0: float) -> None:
        try:
            await self.hooks.serve_socket(ws, self.transport, account, identity, t0)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("Error handling request")
        finally:
            if self.transport is not None:
                self.transport.close()
            # The socket's life is over and nothing more is read here. Letting go of the socket and
            # its task breaks the lane <-> socket cycle (its queue and writer point back at the lane),
            # so the connection is freed now rather than by the next full gc pass (~30 objects a session).
            self.ignore = True
            self.ws = None
            self.task = None


def _send_fin_now(transport: asyncio.Transport | None) -> None:
    """Send our FIN right behind the answer, as a server that closes after a response does.

    ``transport.close()`` closes the socket later in the loop's iteration (uvloop and asyncio
    alike); a client that reads the answer and closes within that gap closes at the same time
    as we do, and both ends keep the connection in TIME_WAIT. uvloop's transport socket has no
    ``shutdown()``, so this shuts down a duplicate of its descriptor (the same connection).
    """
    if transport is None or transport.get_write_buffer_size():
        return  # not all written yet: close() sends the FIN once it is
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        with socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno())) as dup:
            dup.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _account(raw: bytes) -> str | None:
    if raw in (b".", b".."):
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
