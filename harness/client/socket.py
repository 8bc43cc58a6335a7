"""The consumer WebSocket on gevent: connect, correlated requests, keepalive pings, close.

Design (numbers from bench/client_hold.py and a connect loop on this 2-core machine, loopback emulator):

- websocket-client does the framing (``ABNF`` to build masked frames, ``frame_buffer`` and
  ``continuous_frame`` to read them); the TCP connect, TLS wrap and HTTP upgrade are done here
  in a few lines because websocket-client's ``connect`` looks up proxies in the environment,
  builds a fresh ``SSLContext`` per socket (loading the CA store each time) and reads the
  upgrade response one byte per ``recv`` call: ~100 us client CPU per connect here against
  ~430 us through ``websocket.create_connection`` (wss: ~600 us against ~1,150 us).
- One reader greenlet per socket routes responses to waiters (``harness.protocol.Correlator``
  with gevent ``AsyncResult`` waiters) and notifications to ``on_notification``.
- Keepalive pings do NOT cost a greenlet or a timer per socket: one :class:`_PingScheduler`
  greenlet per process keeps a heap with one entry per socket and sends each ping with a
  non-blocking write (10,000 sockets at 5 s pings: ~4% of a core, ~10.5 KB RSS per socket, of
  which ~8 KB is the reader greenlet; 18,000 at 30 s pings: ~1%). A missing pong
  (``pong_timeout``, default = ``ping_interval``: the pong must be back before the next ping
  is due) *closes the socket*: a peer that does not
  answer pings is presumed dead, so the socket is aborted (no close handshake), the reader ends
  with ``CloseInfo(kind="pong timeout")`` and waiting requests fail with :class:`PongTimeout`.
- Sockets to a loopback target (the emulator) leave from one of 64 loopback source addresses in
  turn (:func:`_bind_loopback_source`): all sockets from one address to one host:port share
  one ephemeral port range, and once about half of it is in use Linux searches it on every
  ``connect()`` (0.65 ms each at 18,000 held sockets, against 0.02 ms when spread).
- gevent modules are used explicitly (``gevent.socket``, ``gevent.ssl``), so the client behaves
  the same in a monkey-patched Locust process and in a plain test process.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import itertools
import logging
import os
import ssl
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.lock
from gevent import socket as gsocket
from gevent import ssl as gssl
from websocket import ABNF, WebSocketException
from websocket._abnf import continuous_frame, frame_buffer

from harness.client.errors import (
    BadFrame,
    ClientError,
    Dropped,
    ErrorResponse,
    HandshakeRejected,
    PongTimeout,
    Refused,
    ServerClosed,
    Timeout,
    TlsError,
    categorize,
)
from harness.client.resolver import ip_literal_family
from harness.protocol import Correlator, Notification, ProtocolError, Response, parse
from harness.protocol.messages import CloseCode

log = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL: Final = 60.0  # the tutorial's `wscat -k 60`
DEFAULT_REQUEST_TIMEOUT: Final = 10.0
DEFAULT_CLOSE_TIMEOUT: Final = 5.0
SERVER_EOF_WAIT_S: Final = 1.0  # after the close frames, how long the server gets to close TCP first
MAX_HANDSHAKE_RESPONSE: Final = 16384
RECV_SIZE: Final = 4096  # frame_buffer keeps any surplus, so one recv can carry several frames
SCHEDULER_MIN_SLEEP: Final = 0.001  # pings due within one sleep are sent together (<=1 ms late)
_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPBACK_SOURCES: Final = tuple(f"127.0.1.{n}" for n in range(1, 65))
_IP_BIND_ADDRESS_NO_PORT: Final = getattr(gsocket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2
_next_loopback_source = itertools.cycle(LOOPBACK_SOURCES).__next__

# An empty, masked ping: the mask key of an empty payload masks nothing, so one constant serves all.
_PING_FRAME: Final = bytes((0x80 | ABNF.OPCODE_PING, 0x80)) + b"\x00\x00\x00\x00"

CloseKind = str  # "clean" | "server" | "dropped" | "pong timeout"


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How a socket ended.

    ``kind``: ``"clean"`` we closed it (close() or our close frame), ``"server"`` the server sent a
    close frame (``code`` is its code), ``"dropped"`` the connection ended with no close frame
    (reset/EOF, ``code`` 1006), ``"pong timeout"`` we aborted it because a ping went unanswered.
    """

    kind: CloseKind
    code: int | None = None
    reason: str = ""

    @property
    def category(self) -> str | None:
        """The failure category this end counts as while the socket was still needed; None if clean."""
        if self.kind == "clean":
            return None
        if self.kind == "server":
            return f"close {self.code if self.code is not None else CloseCode.ABNORMAL}"
        return self.kind

    def error(self) -> ClientError:
        """The exception a request on a socket that ended this way raises."""
        if self.kind == "server":
            return ServerClosed(self.code, self.reason)
        if self.kind == "pong timeout":
            return PongTimeout("no pong: socket aborted")
        if self.kind == "dropped":
            return Dropped(self.reason or "connection dropped")
        return ClientError("socket was closed by the client", category="error SocketClosed")


@dataclass(frozen=True, slots=True)
class _Target:
    secure: bool
    host: str
    port: int
    resource: str
    host_header: str
    address: tuple[Any, ...] | None  # (family, sockaddr) for IP literals: no resolver call at all


@lru_cache(maxsize=64)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    packed = f"[{host}]" if ":" in host else host
    host_header = packed if port == (443 if secure else 80) else f"{packed}:{port}"
    family = ip_literal_family(host)
    address = (family, (host, port)) if family is not None else None
    return _Target(secure, host, port, resource, host_header, address)


_TLS_CONTEXTS: dict[bool, gssl.SSLContext] = {}


def tls_context(verify: bool) -> gssl.SSLContext:
    """One shared client context per verify setting: building one loads the CA store (milliseconds)."""
    ctx = _TLS_CONTEXTS.get(verify)
    if ctx is None:
        if verify:
            ctx = gssl.create_default_context()
        else:
            ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = gssl.CERT_NONE
        _TLS_CONTEXTS[verify] = ctx
    return ctx


def _wrap_tls(sock: gsocket.socket, ctx: ssl.SSLContext, host: str) -> gssl.SSLSocket:
    """TLS over ``sock`` with any context: a plain ``ssl.SSLContext`` (made before monkey-patching,
    or in an unpatched process) would otherwise hand back a stdlib socket that blocks the hub."""
    if isinstance(ctx, gssl.SSLContext):
        return ctx.wrap_socket(sock, server_hostname=host)
    return gssl.SSLSocket(sock=sock, server_hostname=host, _context=ctx)  # what gevent's wrap_socket does


def _open_tcp(target: _Target) -> gsocket.socket:
    if target.address is not None:
        candidates: Iterable[tuple[Any, ...]] = [target.address]
    else:
        candidates = [(info[0], info[4]) for info in gsocket.getaddrinfo(target.host, target.port, 0, gsocket.SOCK_STREAM)]
    error: OSError | None = None
    for family, sockaddr in candidates:
        sock = gsocket.socket(family, gsocket.SOCK_STREAM)
        try:
            sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            if family == gsocket.AF_INET and sockaddr[0].startswith("127."):
                _bind_loopback_source(sock)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"no address for {target.host}")


def _bind_loopback_source(sock: gsocket.socket) -> None:
    """Leave from the next loopback source address, its port picked at connect (no port search).

    A load generator holding thousands of sockets to one emulator would otherwise fill the one
    port range between 127.0.0.1 and the emulator's port. Where 127/8 is not all on the
    loopback interface (macOS has only 127.0.0.1), the bind fails and the socket connects
    as before.
    """
    try:
        sock.setsockopt(gsocket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((_next_loopback_source(), 0))
    except OSError:
        pass


def _handshake(sock: gsocket.socket, target: _Target, token: str, headers: Iterable[str]) -> bytes:
    """Send the upgrade request, check the 101 answer; returns bytes read past the headers."""
    key = base64.b64encode(os.urandom(16))
    extra = "".join(f"{h}\r\n" for h in headers)
    request = (
        f"GET {target.resource} HTTP/1.1\r\nHost: {target.host_header}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: jwt {token}\r\n{extra}\r\n"
    ).encode("latin-1")
    sock.sendall(request)
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > MAX_HANDSHAKE_RESPONSE:
            raise ClientError("upgrade response headers too long", category="error BadHandshake")
        chunk = sock.recv(4096)
        if not chunk:
            raise Dropped("connection closed during the WebSocket upgrade")
        buf += chunk
    head = buf[:end].decode("latin-1").split("\r\n")
    status_line = head[0].split(" ", 2)
    try:
        status = int(status_line[1])
    except (IndexError, ValueError):
        raise ClientError(f"bad upgrade status line {head[0][:60]!r}", category="error BadHandshake") from None
    if status != 101:
        raise HandshakeRejected(status)
    accept = ""
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-accept":
            accept = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
    if accept != expected:
        raise ClientError("bad Sec-WebSocket-Accept in the upgrade response", category="error BadHandshake")
    return buf[end + 4 :]


def _typed(exc: BaseException) -> ClientError:
    """A connect-time failure as the typed error of its category."""
    if isinstance(exc, ClientError):
        return exc
    category = categorize(exc)
    detail = f"{type(exc).__name__}: {exc}"
    if category == "refused":
        return Refused(detail)
    if category == "tls":
        return TlsError(detail)
    if category == "timeout":
        return Timeout(detail)
    if category == "dropped":
        return Dropped(detail)
    return ClientError(detail, category=category)


class _Abort(Exception):
    """Thrown into a reader to end it: the socket is given up (pong timeout, close timeout)."""

    def __init__(self, kind: CloseKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _EOF(Exception):
    pass


class _PingScheduler:
    """One greenlet for the pings of every socket in the process (a heap, one entry per socket)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ConsumerSocket]] = []
        self._seq = itertools.count()
        self._wake = gevent.event.Event()
        self._runner: gevent.Greenlet | None = None
        self._sleeping_until = float("inf")
        self._ended = 0  # entries of ended sockets still in the heap (an upper bound)

    def add(self, sock: ConsumerSocket, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), sock))
        if self._runner is None:
            self._runner = gevent.spawn(self._run)
        elif due < self._sleeping_until:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._heap)

    def discard(self) -> None:
        """A socket ended: its entry goes at its due time, or sooner when ended ones pile up.

        Without this a churn run (sessions far shorter than the ping interval) would keep every
        ended socket alive in the heap for up to one interval.
        """
        self._ended += 1
        if self._ended > 256 and self._ended * 2 > len(self._heap):
            self._heap[:] = [e for e in self._heap if e[2]._keeps_pinging]
            heapq.heapify(self._heap)
            self._ended = 0

    def _run(self) -> None:
        heap = self._heap
        try:
            while heap:
                now = time.monotonic()
                due = heap[0][0]
                if due > now:
                    self._sleeping_until = now + max(due - now, SCHEDULER_MIN_SLEEP)
                    self._wake.clear()
                    self._wake.wait(self._sleeping_until - now)
                    self._sleeping_until = float("inf")
                    continue
                ticks = 0
                while heap and heap[0][0] <= now:
                    sock = heapq.heappop(heap)[2]
                    try:
                        nxt = sock._keepalive_tick(now)
                    except Exception:  # never let one socket stop everyone's pings
                        log.exception("keepalive tick failed")
                        nxt = None
                    if nxt is not None:
                        heapq.heappush(heap, (nxt, next(self._seq), sock))
                    elif self._ended:
                        self._ended -= 1
                    ticks += 1
                    if ticks % 512 == 0:
                        gevent.sleep(0)  # let readers run between large batches
        finally:
            self._runner = None


_SCHEDULERS: dict[int, _PingScheduler] = {}


def _scheduler() -> _PingScheduler:
    hub = id(gevent.get_hub())
    sched = _SCHEDULERS.get(hub)
    if sched is None:
        sched = _SCHEDULERS[hub] = _PingScheduler()
    return sched


def _close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")[:120]


def _frame(payload: bytes | str, opcode: int) -> bytes:
    return ABNF.create_frame(payload, opcode).format()


class ConsumerSocket:
    """One consumer WebSocket: a reader greenlet, correlated requests, keepalive pings."""

    __slots__ = (
        "__weakref__",  # the user's live-socket registry (live ping counts)
        "_sock",
        "_fb",
        "_cont",
        "_corr",
        "_wlock",
        "_reader",
        "_closing",
        "_close_code",
        "_ping_interval",
        "_pong_timeout",
        "_ping_sent",
        "_next_ping",
        "_pong_deadline",
        "request_timeout",
        "on_notification",
        "on_pong",
        "on_pong_timeout",
        "on_close",
        "on_bad_frame",
        "close_info",
        "pings_sent",
        "pongs_received",
        "last_rtt",
        "bad_frames",
        "late_responses",
    )

    def __init__(
        self,
        sock: gsocket.socket,
        leftover: bytes = b"",
        *,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        pong_timeout: float | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        on_notification: Callable[[Notification], Any] | None = None,
        on_pong: Callable[[float], Any] | None = None,
        on_pong_timeout: Callable[[], Any] | None = None,
        on_close: Callable[[CloseInfo], Any] | None = None,
        on_bad_frame: Callable[[ProtocolError], Any] | None = None,
    ) -> None:
        """Wrap an upgraded socket (use :meth:`connect`); ``leftover`` = bytes read past the upgrade."""
        sock.settimeout(None)  # the reader waits forever; timed calls use gevent.Timeout
        self._sock = sock
        self._fb = frame_buffer(self._recv, True)  # text is validated by json.loads, not twice
        self._fb.lock = _NO_LOCK  # only the reader reads
        if leftover:
            self._fb.recv_buffer.append(leftover)
        self._cont = continuous_frame(False, True)
        self._corr: Correlator[gevent.event.AsyncResult | None] = Correlator()
        self._wlock = gevent.lock.Semaphore()
        self._closing = False
        self._close_code = CloseCode.NORMAL
        self._ping_interval = ping_interval if ping_interval and ping_interval > 0 else None
        self._pong_timeout = pong_timeout if pong_timeout and pong_timeout > 0 else self._ping_interval
        self._ping_sent: float | None = None
        self._next_ping = 0.0
        self._pong_deadline = 0.0
        self.request_timeout = request_timeout
        self.on_notification = on_notification
        self.on_pong = on_pong
        self.on_pong_timeout = on_pong_timeout
        self.on_close = on_close
        self.on_bad_frame = on_bad_frame
        self.close_info: CloseInfo | None = None
        self.pings_sent = 0
        self.pongs_received = 0
        self.last_rtt: float | None = None
        self.bad_frames = 0
        self.late_responses = 0
        self._reader = gevent.spawn(self._read_loop)
        if self._ping_interval is not None:
            self._next_ping = time.monotonic() + self._ping_interval
            _scheduler().add(self, self._next_ping)

    # ----------------------------------------------------------------- connect

    @classmethod
    def connect(
        cls,
        url: str,
        token: str,
        *,
        timeout: float,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        headers: Iterable[str] = (),
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        pong_timeout: float | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        on_notification: Callable[[Notification], Any] | None = None,
        on_pong: Callable[[float], Any] | None = None,
        on_pong_timeout: Callable[[], Any] | None = None,
        on_close: Callable[[CloseInfo], Any] | None = None,
        on_bad_frame: Callable[[ProtocolError], Any] | None = None,
    ) -> ConsumerSocket:
        """Open ``url`` with ``Authorization: jwt <token>`` within ``timeout`` seconds (TCP + TLS + upgrade).

        Raises HandshakeRejected (upgrade answered with another status), Refused, Timeout,
        TlsError (certificate or TLS failure; ``verify_tls=False`` skips verification;
        ``ssl_context`` replaces the shared default context, e.g. one that trusts a private CA),
        Dropped (connection closed during the upgrade) or ClientError for anything else.
        ``ping_interval`` None or 0 turns keepalive pings off.
        """
        target = _target(url)
        timer = gevent.Timeout(timeout)
        timer.start()
        sock = None
        try:
            sock = _open_tcp(target)
            if target.secure:
                sock = _wrap_tls(sock, ssl_context or tls_context(verify_tls), target.host)
            leftover = _handshake(sock, target, token, headers)
        except gevent.Timeout as exc:
            if sock is not None:
                sock.close()
            if exc is not timer:
                raise
            raise Timeout(f"connect to {target.host}:{target.port} took over {timeout} s") from None
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, ClientError) or not isinstance(exc, Exception):
                raise
            raise _typed(exc) from exc
        finally:
            timer.close()
        return cls(
            sock,
            leftover,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            request_timeout=request_timeout,
            on_notification=on_notification,
            on_pong=on_pong,
            on_pong_timeout=on_pong_timeout,
            on_close=on_close,
            on_bad_frame=on_bad_frame,
        )

    # ----------------------------------------------------------------- requests

    @property
    def open(self) -> bool:
        return self.close_info is None and not self._closing

    def request(self, type_: str, body: Any = None, timeout: float | None = None) -> Response:
        """Send a request and wait for its 2xx response.

        Raises Timeout (no response in ``timeout``, default ``request_timeout``), ErrorResponse
        (non-2xx code), ServerClosed / Dropped / PongTimeout (the socket ended first).
        """
        if not self.open:
            raise self._ended_error()
        timeout = self.request_timeout if timeout is None else timeout
        waiter = gevent.event.AsyncResult()
        entry, text = self._corr.start(type_, body, waiter, time.perf_counter())
        timer = gevent.Timeout(timeout)
        timer.start()
        written = False
        try:
            self._write(_frame(text, ABNF.OPCODE_TEXT))
            written = True
            response: Response = waiter.get()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._corr.cancel(entry.req_id)
            if not written:  # a frame may be half sent: nothing after it would parse
                self.abort("request write timed out")
            raise Timeout(f"{type_} got no response in {timeout} s") from None
        except OSError as exc:
            self._corr.cancel(entry.req_id)
            raise self._write_failed(exc) from None
        finally:
            timer.close()
        if not response.ok:
            raise ErrorResponse(response.code, response)
        return response

    def pending_response(self, type_: str, timeout: float) -> Response | None:
        """The 2xx response to a ``type_`` request still in flight after its caller was interrupted.

        A user that Locust stops while the server is opening its conversation learns the id this
        way and can close it, instead of leaving it open on the service. None when no such
        request is pending, or it fails or gets no answer within ``timeout``.
        """
        for entry in list(self._corr.pending.values()):
            if entry.type == type_ and entry.waiter is not None:
                try:
                    response: Response = entry.waiter.get(timeout=timeout)
                except (gevent.Timeout, ClientError):
                    self._corr.cancel(entry.req_id)
                    return None
                return response if response.ok else None
        return None

    def send(self, type_: str, body: Any = None) -> str:
        """Send a request without waiting (its response, if any, is dropped); returns its id."""
        if not self.open:
            raise self._ended_error()
        entry, text = self._corr.start(type_, body, None, time.perf_counter())
        try:
            self._write(_frame(text, ABNF.OPCODE_TEXT))
        except OSError as exc:
            self._corr.cancel(entry.req_id)
            raise self._write_failed(exc) from None
        return entry.req_id

    # ----------------------------------------------------------------- close

    def close(self, code: int = CloseCode.NORMAL, reason: str = "", timeout: float = DEFAULT_CLOSE_TIMEOUT) -> CloseInfo:
        """Close handshake (our close frame, the server's echo), then the TCP socket.

        Returns how the socket ended: ``kind "clean"`` when this call closed it, or the earlier
        end (server close, drop, pong timeout) if it was already over. Raises Timeout if the
        server does not echo the close within ``timeout`` (the socket is torn down anyway).
        """
        if self.close_info is not None:
            return self.close_info
        if not self._closing:
            self._closing = True
            self._close_code = code
            self._write_within(_frame(_close_payload(code, reason), ABNF.OPCODE_CLOSE), timeout)
        if gevent.getcurrent() is self._reader:  # called from a callback: the reader ends after it returns
            return CloseInfo("clean", code, reason)
        self._reader.join(timeout)
        if self.close_info is None:
            self._kill_reader(_Abort("clean", "no close echo"))
            self._reader.join(1.0)
            raise Timeout(f"server did not answer our close frame in {timeout} s")
        return self.close_info

    def abort(self, reason: str = "aborted") -> None:
        """Tear the connection down now, with no close handshake (kind "dropped" unless closing)."""
        if self.close_info is None:
            self._kill_reader(_Abort("clean" if self._closing else "dropped", reason))

    def wait_closed(self, timeout: float | None = None, interrupt: gevent.event.Event | None = None) -> CloseInfo | None:
        """Hold: block until the socket ends, ``interrupt`` is set or ``timeout`` passes; None means still open."""
        if self.close_info is None:
            if interrupt is None:
                self._reader.join(timeout)
            else:
                gevent.wait([self._reader, interrupt], timeout=timeout, count=1)
        return self.close_info

    # ----------------------------------------------------------------- internals

    def _kill_reader(self, abort: _Abort) -> None:
        """End the reader with ``abort`` (it closes the socket and settles close_info on its way out)."""
        reader = self._reader
        if reader.gr_frame is not None or reader.dead:  # running (or over): it catches the abort
            reader.kill(abort, block=False)
            return
        # Never switched to yet: unschedule it quietly (an exception would be reported as a
        # failed greenlet) and settle the end here, since its finally will never run.
        reader.kill(block=False)
        if self.close_info is None:
            code = self._close_code if abort.kind == "clean" else CloseCode.ABNORMAL
            self._finish(CloseInfo(abort.kind, code, abort.reason))

    def _recv(self, bufsize: int) -> bytes:
        data = self._sock.recv(bufsize if bufsize > RECV_SIZE else RECV_SIZE)
        if not data:
            raise _EOF()
        return data

    def _write(self, data: bytes) -> None:
        with self._wlock:
            self._sock.sendall(data)

    def _write_within(self, data: bytes, timeout: float) -> bool:
        """Best-effort write (close frames): False if it failed or took longer than ``timeout``."""
        timer = gevent.Timeout(timeout)
        timer.start()
        try:
            self._write(data)
            return True
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            return False
        except OSError:
            return False
        finally:
            timer.close()

    def _write_failed(self, exc: OSError) -> ClientError:
        """A write error means the connection is gone: say how, once the reader knows."""
        self._reader.join(1.0)
        if self.close_info is not None:
            return self._ended_error()
        return _typed(exc)

    def _ended_error(self) -> ClientError:
        if self.close_info is not None:
            return self.close_info.error()
        return ClientError("socket is closing", category="error SocketClosed")

    @property
    def _keeps_pinging(self) -> bool:
        return self.close_info is None and not self._closing and self._ping_interval is not None

    def _keepalive_tick(self, now: float) -> float | None:
        """Called by the scheduler when this socket's entry is due; returns the next due time or None."""
        if not self._keeps_pinging:
            return None
        if self._ping_sent is not None:  # a ping is out
            if now >= self._pong_deadline:
                self._ping_sent = None
                self._kill_reader(_Abort("pong timeout", f"no pong in {self._pong_timeout} s"))
                return None
            return self._pong_deadline
        if now < self._next_ping:
            return self._next_ping
        if self._wlock.locked():  # a frame is half written (full send buffer): try again shortly
            return now + 1.0
        try:
            sent = self._sock.send(_PING_FRAME, 0, 0.0)  # never blocks the scheduler
        except OSError:  # would block or broken: the reader will learn which
            return now + 1.0
        if sent != len(_PING_FRAME):  # cannot happen for 6 bytes in practice; finish it in order
            gevent.spawn(self._write, _PING_FRAME[sent:])
        self._ping_sent = time.perf_counter()
        self.pings_sent += 1
        self._pong_deadline = now + self._pong_timeout  # type: ignore[operator]
        self._next_ping = now + self._ping_interval
        return min(self._pong_deadline, self._next_ping)

    def _on_pong(self) -> None:
        sent = self._ping_sent
        if sent is None:
            return  # unsolicited (or after its timeout)
        rtt = time.perf_counter() - sent
        self._ping_sent = None
        self.pongs_received += 1
        self.last_rtt = rtt
        if self.on_pong is not None:
            self._call(self.on_pong, rtt)

    def _on_text(self, data: bytes | str) -> None:
        try:
            envelope = parse(data)
        except ProtocolError as exc:
            self._bad_frame(exc, data)
            return
        if isinstance(envelope, Response):
            try:
                entry = self._corr.resolve(envelope)
            except ProtocolError:
                self.late_responses += 1  # its request timed out (or was never ours)
                return
            if entry.waiter is not None:
                entry.waiter.set(envelope)
        elif isinstance(envelope, Notification):
            if self.on_notification is not None:
                self._call(self.on_notification, envelope)
        else:
            self._bad_frame(ProtocolError("unexpected request", envelope.type), data)

    def _bad_frame(self, exc: ProtocolError, data: bytes | str) -> None:
        """Count and report a frame that is not an envelope; the socket carries on."""
        self.bad_frames += 1
        if self.on_bad_frame is not None:
            self._call(self.on_bad_frame, exc)
        # A response-shaped frame that names a pending request fails that request now
        # (category "bad json") instead of leaving it to time out.
        # A frame that cannot even be read is pinned on the one request waiting, if only one is
        # (a session waits for one answer at a time); otherwise the requests run into their timeouts.
        req_id = _req_id_of(data)
        if req_id is None:
            waiting = [e for e in self._corr.pending.values() if e.waiter is not None]
            if len(waiting) != 1 or _looks_like_notification(data):
                return
            req_id = waiting[0].req_id
        entry = self._corr.cancel(req_id)
        if entry is not None and entry.waiter is not None:
            entry.waiter.set_exception(BadFrame(f"{exc.reason} in the response to {entry.type}"))

    def _call(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception:  # a handler's bug must not kill the reader
            log.exception("consumer socket handler %r failed", func)

    def _read_loop(self) -> None:
        fb = self._fb
        cont = self._cont
        kind: CloseKind = "dropped"
        code: int | None = CloseCode.ABNORMAL
        reason = ""
        try:
            while True:
                frame = fb.recv_frame()
                op = frame.opcode
                if op == ABNF.OPCODE_TEXT and frame.fin and not cont.recving_frames:
                    self._on_text(frame.data)
                elif op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                    cont.validate(frame)
                    cont.add(frame)
                    if cont.is_fire(frame):
                        opcode, whole = cont.extract(frame)
                        self._on_text(whole.data)
                elif op == ABNF.OPCODE_PONG:
                    self._on_pong()
                elif op == ABNF.OPCODE_PING:
                    self._write(_frame(frame.data, ABNF.OPCODE_PONG))
                elif op == ABNF.OPCODE_CLOSE:
                    data = frame.data
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    reason = data[2:].decode("utf-8", "replace")
                    if self._closing:
                        kind, code = "clean", self._close_code  # the echo's code is the server's formality
                    else:
                        kind = "server"
                        # echo the code, as RFC 6455 asks; the peer may already be gone
                        self._write_within(_frame(_close_payload(code), ABNF.OPCODE_CLOSE), 1.0)
                    self._await_server_eof()
                    break
        except _Abort as exc:
            kind, reason = exc.kind, exc.reason
            code = self._close_code if kind == "clean" else CloseCode.ABNORMAL
        except _EOF:
            kind, reason = ("clean", "eof after our close") if self._closing else ("dropped", "eof")
            code = self._close_code if self._closing else CloseCode.ABNORMAL
        except gevent.GreenletExit:
            kind, reason = ("clean" if self._closing else "dropped"), "reader killed"
            code = self._close_code if self._closing else CloseCode.ABNORMAL
        except (OSError, WebSocketException, ValueError) as exc:  # ssl errors are OSErrors
            if self._closing:
                kind, code = "clean", self._close_code
            else:
                kind, code = "dropped", CloseCode.ABNORMAL
            reason = f"{categorize(exc)}: {exc}"[:200]
        finally:
            self._finish(CloseInfo(kind, code, reason))

    def _await_server_eof(self) -> None:
        """Let the server close TCP first, as RFC 6455 (7.1.1) asks, so the TIME_WAIT is the server's.

        Closing right after the close frames would leave each finished session's port in
        TIME_WAIT on the load generator for a minute; in churn mode that fills the ephemeral
        port range to the target and makes every connect() search it.
        """
        with contextlib.suppress(OSError), gevent.Timeout(SERVER_EOF_WAIT_S, False):
            while self._sock.recv(RECV_SIZE):
                pass

    def _finish(self, info: CloseInfo) -> None:
        if self.close_info is not None:
            return
        self.close_info = info
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._ping_interval is not None:
            _scheduler().discard()
        pending = self._corr.drain()
        for entry in pending:
            if entry.waiter is not None:
                entry.waiter.set_exception(info.error())
        if info.kind == "pong timeout" and self.on_pong_timeout is not None:
            self._call(self.on_pong_timeout)
        if self.on_close is not None:
            self._call(self.on_close, info)


class _NoLock:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK: Final = _NoLock()


def _looks_like_notification(data: bytes | str) -> bool:
    return (b'"notification"' if isinstance(data, bytes) else '"notification"') in data


def _req_id_of(data: bytes | str) -> str | None:
    """The ``reqId`` a broken frame names, if it can be read at all (best effort, no full parse)."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    at = text.find('"reqId"')
    if at < 0:
        return None
    rest = text[at + 7 :].lstrip()
    if not rest.startswith(":"):
        return None
    rest = rest[1:].lstrip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        return rest[1:end] if end > 1 else None
    digits = "".join(itertools.takewhile(str.isdigit, rest))
    return digits or None
