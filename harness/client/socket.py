"""The consumer WebSocket on gevent: a reader greenlet, correlated requests, keepalive pings, close.

:mod:`harness.client.transport` opens the socket (TCP, TLS, source address, upgrade),
:mod:`harness.client.pinger` schedules the pings of every socket, :mod:`harness.client.framing`
reads and builds frames. What a text frame means for the requests waiting (which one it
answers, what a broken one fails) is :class:`~harness.protocol.connection.ConsumerConnection`'s;
when a ping is due or a pong overdue is :class:`~harness.protocol.keepalive.Keepalive`'s.

One reader greenlet per socket routes responses to waiters (gevent ``AsyncResult``) and
notifications to ``on_notification``; pings cost no greenlet or timer per socket (the pinger
ticks :meth:`ConsumerSocket.keepalive_tick`, which writes without blocking). A missing pong
(``pong_timeout``, default ``ping_interval``) *aborts the socket*: a peer that does not answer
pings is presumed dead, the reader ends with ``CloseInfo(kind="pong timeout")`` and waiting
requests fail with :class:`PongTimeout`.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any, Final

import gevent
import gevent.event
import gevent.lock
from gevent import socket as gsocket

from harness.client import framing
from harness.client.errors import BadFrame, ClientError, CloseInfo, CloseKind, ErrorResponse, Timeout, categorize, typed
from harness.client.framing import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, PING_FRAME, frame
from harness.client.pinger import clock, scheduler
from harness.client.transport import open_upgraded, tls_context
from harness.protocol import Notification, ProtocolError, Response
from harness.protocol.closing import CloseCode, close_payload, echo_payload, parse_close_payload
from harness.protocol.connection import Answered, ConsumerConnection, Late, Notified
from harness.protocol.keepalive import DEFAULT_PING_INTERVAL, Due, Keepalive

__all__ = ["DEFAULT_PING_INTERVAL", "CloseInfo", "ConsumerSocket", "tls_context"]

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT: Final = 10.0
DEFAULT_CLOSE_TIMEOUT: Final = 5.0
SERVER_EOF_WAIT_S: Final = 1.0  # after the close frames, how long the server gets to close TCP first
RECV_SIZE: Final = 4096  # frame_buffer keeps any surplus, so one recv can carry several frames
PING_RETRY_S: Final = 1.0  # a ping that could not be written now is tried again this much later


class _Abort(Exception):
    """Thrown into a reader to end it: the socket is given up (pong timeout, close timeout)."""

    def __init__(self, kind: CloseKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _EOF(Exception):
    pass


class ConsumerSocket:
    """One consumer WebSocket: a reader greenlet, correlated requests, keepalive pings."""

    __slots__ = (
        "__weakref__",  # the user's live-socket registry (live ping counts)
        "_sock", "_fb", "_cont", "_wlock", "_reader",  # the connection, its frame reader and writer lock
        "_conn", "_closing", "_close_code", "_keepalive",  # protocol state: requests, close, pings
        "_cut",  # the request its caller was killed waiting for: (type, waiter)
        "_read_at", "last_answer_s",  # when the reader last read bytes; the last request's write-to-read time
        "request_timeout", "on_notification", "on_pong", "on_pong_timeout", "on_close", "on_bad_frame",
        "close_info", "pings_sent", "pongs_received", "last_rtt", "bad_frames", "late_responses",
    )  # fmt: skip

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
        self._fb = framing.reader(self._recv, leftover)
        self._cont = framing.message_assembler()
        self._conn: ConsumerConnection[gevent.event.AsyncResult | None] = ConsumerConnection()
        self._wlock = gevent.lock.Semaphore()
        self._closing = False
        self._close_code = CloseCode.NORMAL
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
        self._keepalive: Keepalive | None = None
        self._cut: tuple[str, gevent.event.AsyncResult] | None = None
        self._read_at = self.last_answer_s = 0.0
        if ping_interval and ping_interval > 0:
            self._keepalive = Keepalive(ping_interval, pong_timeout, clock())
        self._reader = gevent.spawn(self._read_loop)
        if self._keepalive is not None:
            scheduler().add(self, self._keepalive.next_ping)

    # ----------------------------------------------------------------- connect

    @classmethod
    def connect(
        cls,
        url: str,
        token: str | None,
        *,
        timeout: float,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        headers: Iterable[str] = (),
        **options: Any,
    ) -> ConsumerSocket:
        """Open ``url`` with ``Authorization: jwt <token>`` (None: no header, InitConnection follows) in ``timeout`` s.

        Raises HandshakeRejected (upgrade answered with another status), Refused, Timeout,
        TlsError (certificate or TLS failure; ``verify_tls=False`` skips verification;
        ``ssl_context`` replaces the shared default context, e.g. one that trusts a private CA),
        Dropped (connection closed during the upgrade) or ClientError for anything else.
        ``options``: the socket's own keywords (``ping_interval`` None or 0: no pings, ``pong_timeout``,
        ``request_timeout``, the ``on_*`` callbacks).
        """
        sock, leftover = open_upgraded(
            url, token, timeout=timeout, verify_tls=verify_tls, ssl_context=ssl_context, headers=headers
        )
        try:
            return cls(sock, leftover, **options)
        except BaseException:  # a wrong keyword: no socket is left open behind the TypeError
            sock.close()
            raise

    # ----------------------------------------------------------------- requests

    @property
    def open(self) -> bool:
        return self.close_info is None and not self._closing

    def request(self, type_: str, body: Any = None, timeout: float | None = None, headers: Any = None) -> Response:
        """Send a request (``headers``: InitConnection's credential) and wait for its 2xx response.

        Raises Timeout (no response in ``timeout``, default ``request_timeout``), ErrorResponse
        (non-2xx code), ServerClosed / Dropped / PongTimeout (the socket ended first). Then ``last_answer_s``
        is its time from the write to the answer's bytes read: the target's, without the wait to resume us.
        """
        if not self.open:
            raise self._ended_error()
        timeout = self.request_timeout if timeout is None else timeout
        waiter = gevent.event.AsyncResult()
        entry, text = self._conn.request(type_, body, waiter, clock(), headers)
        timer = gevent.Timeout(timeout)
        timer.start()
        written = False
        try:
            sent_at = clock()
            self._write(frame(text, OP_TEXT))
            written = True
            response, read_at = waiter.get()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._conn.requests.cancel(entry.req_id)
            if not written:  # a frame may be half sent: nothing after it would parse
                self.abort("request write timed out")
            raise Timeout(f"{type_} got no response in {timeout} s") from None
        except OSError as exc:
            self._conn.requests.cancel(entry.req_id)
            raise self._write_failed(exc) from None
        except BaseException:  # the caller was killed: its answer may have arrived, or may yet
            self._cut = (type_, waiter) if written else None
            raise
        finally:
            timer.close()
        self.last_answer_s = read_at - sent_at
        if not response.ok:
            raise ErrorResponse(response.code, response)
        return response

    def pending_response(self, type_: str, timeout: float) -> Response | None:
        """The 2xx response to a ``type_`` request its caller was killed waiting for (answered or still due).

        A user Locust stops mid-request learns the conversation id or the close's outcome this way,
        instead of leaving it open. None when there is none, or it fails or is unanswered in ``timeout``.
        """
        requests = self._conn.requests
        cut, self._cut = self._cut, None
        waiter = cut[1] if cut is not None and cut[0] == type_ else None  # answered already, or still due
        if waiter is None:
            waiter = next((e.waiter for e in requests.pending.values() if e.type == type_ and e.waiter), None)
        if waiter is None:
            return None
        try:
            response, _ = waiter.get(timeout=timeout)
        except (gevent.Timeout, ClientError):
            for entry in list(requests.pending.values()):
                if entry.waiter is waiter:
                    requests.cancel(entry.req_id)
            return None
        return response if response.ok else None

    def send(self, type_: str, body: Any = None) -> str:
        """Send a request without waiting (its response, if any, is dropped); returns its id."""
        if not self.open:
            raise self._ended_error()
        entry, text = self._conn.request(type_, body, None, clock())
        try:
            self._write(frame(text, OP_TEXT))
        except OSError as exc:
            self._conn.requests.cancel(entry.req_id)
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
            self._write_within(frame(close_payload(code, reason), OP_CLOSE), timeout)
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

    # ----------------------------------------------------------------- keepalive (the pinger's calls)

    @property
    def keeps_pinging(self) -> bool:
        """Whether the pinger should keep this socket's entry: open, not closing, pings on."""
        return self.close_info is None and not self._closing and self._keepalive is not None

    def keepalive_tick(self, now: float) -> float | None:
        """The pinger's call when this socket's entry is due; returns the next due time or None."""
        ka = self._keepalive
        if ka is None or self.close_info is not None or self._closing:
            return None
        due, at = ka.check(now)
        if due is Due.NOTHING:
            return at
        if due is Due.DEAD:
            ka.give_up()
            self._kill_reader(_Abort("pong timeout", f"no pong in {ka.pong_timeout} s"))
            return None
        if self._wlock.locked():  # a frame is half written (full send buffer): try again shortly
            return now + PING_RETRY_S
        try:
            sent = self._sock.send(PING_FRAME, 0, 0.0)  # never blocks the scheduler
        except OSError:  # would block or broken: the reader will learn which
            return now + PING_RETRY_S
        if sent != len(PING_FRAME):  # cannot happen for 6 bytes in practice; finish it in order
            gevent.spawn(self._write, PING_FRAME[sent:])
        self.pings_sent += 1
        return ka.ping_sent_at(clock())  # the RTT runs from the write, not from the batch's start

    def _on_pong(self) -> None:
        ka = self._keepalive
        rtt = ka.pong_received(clock()) if ka is not None else None
        if rtt is None:
            return  # unsolicited (or after its timeout)
        self.pongs_received += 1
        self.last_rtt = rtt
        if self.on_pong is not None:
            self._call(self.on_pong, rtt)

    # ----------------------------------------------------------------- reader

    def _on_text(self, data: bytes | str) -> None:
        event = self._conn.receive_text(data)
        if isinstance(event, Answered):
            waiter = event.entry.waiter
            if waiter is not None:
                waiter.set((event.response, self._read_at))  # the answer, and when its bytes were read
        elif isinstance(event, Notified):
            if self.on_notification is not None:
                self._call(self.on_notification, event.notification)
        elif isinstance(event, Late):
            self.late_responses += 1  # its request timed out (or was never ours)
        else:  # Broken: counted and reported; the socket carries on
            self.bad_frames += 1
            if self.on_bad_frame is not None:
                self._call(self.on_bad_frame, event.error)
            failed = event.failed
            if failed is not None:
                failed.waiter.set_exception(BadFrame(f"{event.error.reason} in the response to {failed.type}"))

    def _call(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception:  # a handler's bug must not kill the reader
            log.exception("consumer socket handler %r failed", func)

    def _read_loop(self) -> None:
        fb = self._fb
        cont = self._cont
        end: CloseInfo | None = None
        try:
            while True:
                op, data = framing.read_message(fb, cont)
                if op in (OP_TEXT, OP_BINARY):
                    self._on_text(data)
                elif op == OP_PONG:
                    self._on_pong()
                elif op == OP_PING:
                    self._write(frame(data, OP_PONG))
                elif op == OP_CLOSE:
                    code, reason = parse_close_payload(data)
                    if self._closing:
                        kind, code = "clean", self._close_code  # the echo's code is the server's formality
                    else:
                        kind = "server"
                        # echo the code, as RFC 6455 asks; the peer may already be gone
                        self._write_within(frame(echo_payload(code), OP_CLOSE), 1.0)
                    self._await_server_eof()
                    end = CloseInfo(kind, code, reason)
                    break
        except _Abort as exc:
            end = CloseInfo(exc.kind, self._close_code if exc.kind == "clean" else CloseCode.ABNORMAL, exc.reason)
        except _EOF:
            end = self._ended("eof after our close" if self._closing else "eof")
        except gevent.GreenletExit:
            end = self._ended("reader killed")
        except (OSError, framing.FrameError, ValueError) as exc:  # ssl errors are OSErrors
            end = self._ended(f"{categorize(exc)}: {exc}"[:200])
        finally:
            self._finish(end or CloseInfo("dropped", CloseCode.ABNORMAL))

    def _ended(self, reason: str) -> CloseInfo:
        """The end of a reader stopped by the connection: clean while we close, else a drop."""
        if self._closing:
            return CloseInfo("clean", self._close_code, reason)
        return CloseInfo("dropped", CloseCode.ABNORMAL, reason)

    def _await_server_eof(self) -> None:
        """Let the server close TCP first, as RFC 6455 (7.1.1) asks, so the TIME_WAIT is the server's.

        Closing right after the close frames would leave each finished session's port in
        TIME_WAIT on the load generator for a minute; in churn mode that fills the ephemeral
        port range to the target and makes every connect() search it.
        """
        with contextlib.suppress(OSError), gevent.Timeout(SERVER_EOF_WAIT_S, False):
            while self._sock.recv(RECV_SIZE):
                pass

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
        self._read_at = clock()
        if not data:
            raise _EOF()
        return data

    def _write(self, data: bytes) -> None:
        with self._wlock:
            self._sock.sendall(data)

    def _write_within(self, data: bytes, timeout: float) -> None:
        """Best-effort write (close frames): given up when it fails or takes longer than ``timeout``."""
        with contextlib.suppress(OSError), gevent.Timeout(timeout, False):
            self._write(data)

    def _write_failed(self, exc: OSError) -> ClientError:
        """A write error means the connection is gone: say how, once the reader knows."""
        self._reader.join(1.0)
        if self.close_info is not None:
            return self._ended_error()
        return typed(exc)

    def _ended_error(self) -> ClientError:
        if self.close_info is not None:
            return self.close_info.error()
        return ClientError("socket is closing", category="error SocketClosed")

    def _finish(self, info: CloseInfo) -> None:
        if self.close_info is not None:
            return
        self.close_info = info
        with contextlib.suppress(OSError):
            self._sock.close()
        framing.detach(self._fb)  # freed by reference counting, not a full collection (harness/heap.py)
        if self._keepalive is not None:
            scheduler().discard()
        for entry in self._conn.requests.drain():
            if entry.waiter is not None:
                entry.waiter.set_exception(info.error())
        if info.kind == "pong timeout" and self.on_pong_timeout is not None:
            self._call(self.on_pong_timeout)
        if self.on_close is not None:
            self._call(self.on_close, info)
