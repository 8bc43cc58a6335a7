"""Typed client failures and the one function that names any failure's category.

Reports count each failure under one short string ("timeout", "handshake 401", "close 4401"...,
docs/reports.md "Failure categories"). The client raises the classes below with the category
already attached; :func:`categorize` is the single place where every other exception (from
websocket-client, socket/ssl, gevent, requests, geventhttpclient) is mapped to the same strings,
so no caller grows its own ``isinstance`` ladder, and :func:`typed` turns any of them into the
class of its category. :class:`CloseInfo` is how a socket ended, with the category and the error
that end means for whoever still needed the socket.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import gevent
import websocket

from harness.protocol import ProtocolError
from harness.protocol.closing import CloseCode

try:  # optional at import time: the client itself never needs them
    import requests
except ImportError:  # pragma: no cover
    requests = None  # type: ignore[assignment]
try:
    from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
    from geventhttpclient.useragent import BadStatusCode
except ImportError:  # pragma: no cover
    HTTPConnectionClosed = HTTPParseError = BadStatusCode = None  # type: ignore[assignment,misc]


class ClientError(Exception):
    """Base of every failure the client raises; ``category`` is the report string."""

    category: str = "error ClientError"
    retry_after: float | None = None  # seconds a refusal (429, 503) asked the client to wait, if it said

    def __init__(self, message: str = "", *, category: str | None = None) -> None:
        if category is not None:
            self.category = category
        super().__init__(message or self.category)


class HttpStatusError(ClientError):
    """A token-phase HTTP call answered with a non-2xx status."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.category = f"http {status}"
        super().__init__(message or f"HTTP status {status}")


class Timeout(ClientError):
    category = "timeout"


class Refused(ClientError):
    category = "refused"


class TlsError(ClientError):
    category = "tls"


class BadFrame(ClientError):
    """A frame (or HTTP body) that is not the JSON the protocol promises."""

    category = "bad json"


class HandshakeRejected(ClientError):
    """The WebSocket upgrade was answered with an HTTP status other than 101 (``Retry-After`` kept)."""

    def __init__(self, status: int, message: str = "", *, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.category = f"handshake {status}"
        super().__init__(message or f"WebSocket upgrade refused with HTTP {status}")


class ServerClosed(ClientError):
    """The server sent a close frame (``code``) while we still needed the socket."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        self.category = f"close {int(code if code is not None else CloseCode.NO_STATUS)}"
        super().__init__(f"server closed the socket: {code} {reason}".rstrip())


class ErrorResponse(ClientError):
    """A response with a non-2xx ``code``; ``response`` is the parsed envelope."""

    def __init__(self, code: int, response: Any = None) -> None:
        self.code = code
        self.response = response
        self.category = f"resp {code}"
        rtype = getattr(response, "type", "")
        super().__init__(f"error response {code} {rtype}".rstrip())


class PongTimeout(ClientError):
    category = "pong timeout"


class Dropped(ClientError):
    """The connection ended without a close frame (reset, EOF)."""

    category = "dropped"


class ProxyError(ClientError):
    """The HTTP proxy refused: the connection (``proxy refused``), or the CONNECT with ``status``
    (``proxy 407``, ``proxy 403``, ``proxy 502``...), or ended or garbled its answer
    (``proxy dropped``, ``proxy bad answer``); harness/client/proxy.py says which."""

    def __init__(self, message: str, *, status: int | None = None, category: str | None = None) -> None:
        self.status = status
        super().__init__(message, category=category or (f"proxy {status}" if status else "proxy refused"))


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


_DROP_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN})
_REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (``__cause__``, ``__context__``, urllib3's ``.reason``, args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 12:
        item = todo.pop(0)
        if any(item is s for s in seen):
            continue
        seen.append(item)
        for nxt in (item.__cause__, item.__context__, getattr(item, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
        todo.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return seen


def _direct(exc: BaseException) -> str | None:
    """The category of one exception, not looking at what it wraps; None if it says nothing."""
    if isinstance(exc, ClientError):
        return exc.category
    if isinstance(exc, ProtocolError | json.JSONDecodeError | UnicodeDecodeError):
        return "bad json"
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"handshake {exc.status_code}"
    if isinstance(exc, websocket.WebSocketTimeoutException | gevent.Timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, websocket.WebSocketConnectionClosedException):
        return "dropped"
    if BadStatusCode is not None and isinstance(exc, BadStatusCode) and getattr(exc, "code", 0):
        return f"http {exc.code}"
    if requests is not None:
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return f"http {exc.response.status_code}"
        if isinstance(exc, requests.Timeout):
            return "timeout"
        if isinstance(exc, requests.exceptions.SSLError):
            return "tls"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) and "handshake" not in str(exc).lower():
            return "dropped"
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError | EOFError):
        return "dropped"
    if HTTPConnectionClosed is not None and isinstance(exc, HTTPConnectionClosed):
        return "dropped"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _REFUSED_ERRNOS:
            return "refused"
        if exc.errno in _DROP_ERRNOS:
            return "dropped"
        if exc.errno == errno.ETIMEDOUT:
            return "timeout"
    if type(exc).__name__ in ("RemoteDisconnected", "IncompleteRead"):  # http.client, via urllib3
        return "dropped"
    return None


def categorize(exc: BaseException) -> str:
    """The failure category of any exception: ours, websocket-client's, socket/ssl/gevent's, HTTP clients'.

    Wrapped exceptions (requests -> urllib3 -> OSError) are unwrapped, the most specific
    meaning wins, and anything unknown is ``"error <ExceptionName>"`` of the outermost one.
    """
    for item in _causes(exc):
        category = _direct(item)
        if category is not None:
            return category
    if isinstance(exc, socket.gaierror):
        return "error gaierror"
    if requests is not None and isinstance(exc, requests.ConnectionError):
        return "refused" if "refused" in str(exc).lower() else "dropped"
    if HTTPParseError is not None and isinstance(exc, HTTPParseError):
        return "dropped"
    return f"error {type(exc).__name__}"


_TYPED: dict[str, type[ClientError]] = {"refused": Refused, "tls": TlsError, "timeout": Timeout, "dropped": Dropped}


def typed(exc: BaseException) -> ClientError:
    """Any failure as the typed error of its category (ours are returned as they are)."""
    if isinstance(exc, ClientError):
        return exc
    category = categorize(exc)
    detail = f"{type(exc).__name__}: {exc}"
    kind = _TYPED.get(category)
    if kind is not None:
        return kind(detail)
    return ClientError(detail, category=category)
