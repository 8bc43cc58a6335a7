"""A fast lane in front of aiohttp for the requests every consumer flow makes (plain HTTP only).

Why: aiohttp's per-request and per-connection machinery (request objects, a task per
request, the router, response objects, the WebSocketResponse handshake) cost more CPU per
consumer flow than RSA signing did, which kept one emulator process under the 1,500 flows/s
target (bench/results/emulator-capacity.md). This protocol reads each new connection first
and serves, itself, only the exact common shapes:

- ``POST /api/account/{acc}/anonymous/authorize`` and ``.../authenticate`` (both URL forms),
  HTTP/1.1, a Content-Length body (or none) within ``client_max_size``;
- the consumer WebSocket upgrade with a valid ``Authorization: jwt`` token.

and only while no latency or fault is configured for that target. Anything else -- another
path or method, HTTP/1.0, chunked bodies, ``Expect``, duplicated
headers, a refused handshake, an unknown account, any injected latency or fault -- is handed,
bytes and all, to aiohttp's own request handler for the rest of the connection, so every
error and fault is produced by the same code as before. The answers are byte-for-byte what
aiohttp writes (same status line, headers, ``Date``/``Server``), and the ledger, state and
timers are the same :class:`~harness.emulator.server.Emulator` code.

After the upgrade the socket is a :class:`FastSocket`: aiohttp's own frame reader (C) and
writer, under the subset of ``WebSocketResponse`` the emulator uses (``receive``,
``send_str``, ``pong``, ``close``, ``closed``), with aiohttp's close semantics.

It depends on aiohttp internals (3.14: ``WebSocketDataQueue``, ``WebSocketReader``'s
signature); :func:`available` says whether they are there, and the runner falls back to
plain aiohttp when they are not, or when ``LP_EMULATOR_FASTLANE=0`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable
from http import HTTPStatus
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import (
    SERVER_SOFTWARE,
    WS_CLOSING_MESSAGE,
    WS_KEY,
    WebSocketError,
    WebSocketReader,
    WebSocketWriter,
    WSCloseCode,
    WSMessage,
    WSMsgType,
)
from aiohttp.tcp_helpers import tcp_keepalive

if TYPE_CHECKING:
    from harness.emulator.server import Emulator

try:  # aiohttp internals this module relies on (checked by available())
    from aiohttp._websocket.reader import WebSocketDataQueue
    from aiohttp.streams import EofStream
except ImportError:  # pragma: no cover - other aiohttp versions
    WebSocketDataQueue = None  # type: ignore[assignment,misc]
    EofStream = None  # type: ignore[assignment,misc]

log = logging.getLogger("lp-emulator")

MAX_BODY = 256 * 1024  # the aiohttp app's client_max_size
MAX_HEAD = 16 * 1024
MAX_MSG_SIZE = 1024 * 1024  # WebSocketResponse(max_msg_size=...) in server.py
READ_LIMIT = 2**16  # aiohttp's DEFAULT_CHUNK_SIZE for the frame queue and writer
KEEPALIVE_S = 75.0  # aiohttp's keepalive_timeout default
CLOSE_TIMEOUT_S = 10.0  # WebSocketResponse's default close timeout
_SERVER = SERVER_SOFTWARE.encode()

_IDP_PATH = re.compile(rb"/api/account/([^/{}%]+)/(?:anonymous/(authorize)|authenticate|app/[^/{}%]+/authenticate)")
_WS_PATH = re.compile(rb"/ws_api/account/([^/{}%]+)/messaging/consumer")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def available() -> bool:
    """True when the fast lane can run on this aiohttp (and it was not turned off)."""
    if os.environ.get("LP_EMULATOR_FASTLANE", "1") == "0" or WebSocketDataQueue is None:
        return False
    try:
        loop = asyncio.new_event_loop()
        try:
            queue = WebSocketDataQueue(BaseProtocol(loop), READ_LIMIT, loop=loop)
            WebSocketReader(queue, MAX_MSG_SIZE, compress=False, decode_text=True)
        finally:
            loop.close()
    except Exception:  # noqa: BLE001 - any mismatch means: use plain aiohttp
        return False
    return True


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

    __slots__ = ("emulator", "factory", "lanes", "buf", "ws", "task", "handle", "last_used", "ignore")

    def __init__(self, emulator: Emulator, factory: Callable[[], asyncio.Protocol], lanes: set[FastLane]) -> None:
        super().__init__(asyncio.get_running_loop())
        self.emulator = emulator
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
            if b"transfer-encoding" in headers or b"expect" in headers:
                self.handoff()
                return
            connection = headers.get(b"connection", b"").lower()
            path = target.partition(b"?")[0]
            if method == b"POST":
                m = _IDP_PATH.fullmatch(path)
                length = headers.get(b"content-length", b"0")
                if (
                    m is None
                    or b"upgrade" in headers
                    or not length.isdigit()
                    or int(length) > MAX_BODY
                ):
                    self.handoff()
                    return
                account = _account(m.group(1))
                what = "anonymous-authorize" if m.group(2) else "authenticate"
                if account is None or self.emulator.plan.has_any(what):
                    self.handoff()
                    return
                total = end + 4 + int(length)
                if len(buf) < total:
                    return  # wait for the body
                body = bytes(buf[end + 4 : total])
                del buf[:total]
                self.last_used = self._loop.time()
                close = b"close" in connection
                self.emulator.fast_idp(self.transport, what, account, body, close)
                if close:  # as aiohttp: answer, then close (what follows on this connection is ignored)
                    _send_fin_now(self.transport)
                    self.transport.close()
                    return
            elif method == b"GET" and b"upgrade" in connection:
                m = _WS_PATH.fullmatch(path)
                if m is None or b"content-length" in headers:
                    self.handoff()
                    return
                account = _account(m.group(1))
                if account is None or not self._upgrade(account, headers):
                    self.handoff()
                return
            else:
                self.handoff()
                return

    def _upgrade(self, account: str, headers: dict[bytes, bytes]) -> bool:
        """Accept the consumer socket here if the handshake is the plain good one; else False."""
        t0 = perf_counter()
        emulator = self.emulator
        if (
            headers.get(b"upgrade", b"").lower() != b"websocket"
            or b"upgrade" not in [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
            or headers.get(b"sec-websocket-version") != b"13"
            or b"sec-websocket-protocol" in headers
            or emulator.plan.has_any("connect")
        ):
            return False
        key = headers.get(b"sec-websocket-key", b"")
        try:
            if len(base64.b64decode(key)) != 16:
                return False
        except (binascii.Error, ValueError):
            return False
        auth = headers.get(b"authorization")
        if auth is None:
            return False
        identity = emulator.fast_identity(auth, account)
        if identity is None:
            return False  # aiohttp refuses it (and counts it) the documented way
        transport = self.transport
        assert transport is not None
        accept = base64.b64encode(hashlib.sha1(key + WS_KEY).digest())
        transport.write(
            _head(101, b"Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: %s\r\n" % accept)
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

    async def _serve(self, ws: FastSocket, account: str, identity: Any, t0: float) -> None:
        try:
            await self.emulator.fast_socket(ws, self.transport, account, identity, t0)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("Error handling request")
        finally:
            if self.transport is not None:
                self.transport.close()


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


class FastSocket:
    """The part of ``aiohttp.web.WebSocketResponse`` the emulator uses, over aiohttp's reader/writer."""

    __slots__ = ("lane", "transport", "queue", "reader", "writer", "_closed", "_closing", "_waiting", "_close_wait")

    def __init__(self, lane: FastLane, transport: asyncio.Transport) -> None:
        self.lane = lane
        self.transport = transport
        self.queue = WebSocketDataQueue(lane, READ_LIMIT, loop=lane._loop)
        self.reader = WebSocketReader(self.queue, MAX_MSG_SIZE, compress=False, decode_text=True)
        self.writer = WebSocketWriter(lane, transport, limit=READ_LIMIT, compress=0)
        self._closed = False
        self._closing = False
        self._waiting = False
        self._close_wait: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_str(self, data: str) -> None:
        await self.writer.send_frame(data.encode("utf-8"), WSMsgType.TEXT)

    async def pong(self, message: bytes = b"") -> None:
        await self.writer.send_frame(message, WSMsgType.PONG)

    async def receive(self) -> WSMessage:
        """As ``WebSocketResponse.receive`` with ``autoping=False, autoclose=True`` and no timeout."""
        while True:
            if self._closed:
                return WSMessage(WSMsgType.CLOSED, None, None)
            if self._closing:
                return WS_CLOSING_MESSAGE
            try:
                self._waiting = True
                try:
                    msg = await self.queue.read()
                finally:
                    self._waiting = False
                    if self._close_wait is not None and not self._close_wait.done():
                        self._close_wait.set_result(None)
            except EofStream:
                await self.close()
                return WSMessage(WSMsgType.CLOSED, None, None)
            except WebSocketError as exc:
                await self.close(code=exc.code)
                return WSMessage(WSMsgType.ERROR, exc, None)
            except Exception as exc:  # noqa: BLE001 - as aiohttp: an ERROR message
                self._closing = True
                await self.close()
                return WSMessage(WSMsgType.ERROR, exc, None)
            mtype = msg.type
            if mtype is WSMsgType.CLOSE:
                self._closing = True
                if not self._closed:
                    await self.close(drain=False)
            elif mtype is WSMsgType.CLOSING:
                self._closing = True
            return msg

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        """As ``WebSocketResponse.close``: send a close frame, then wait for the client's (10 s)."""
        if self._closed:
            return False
        self._closed = True
        transport = self.transport
        try:
            await self.writer.close(code, message)
            if drain:
                await self.lane._drain_helper()
        except (asyncio.CancelledError, asyncio.TimeoutError):
            transport.close()
            raise
        except Exception:  # noqa: BLE001
            transport.close()
            return True
        if self._waiting:
            self._close_wait = self.lane._loop.create_future()
            self.queue.feed_data(WS_CLOSING_MESSAGE, 0)
            await self._close_wait
        if self._closing:
            transport.close()
            return True
        try:
            await asyncio.wait_for(self._await_close_frame(), CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            transport.close()
            raise
        except Exception:  # noqa: BLE001 - timeout, EOF: the connection is closed either way
            transport.close()
        return True

    async def _await_close_frame(self) -> None:
        while True:
            msg = await self.queue.read()
            if msg.type is WSMsgType.CLOSE:
                self.transport.close()
                return
