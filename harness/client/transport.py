"""A consumer socket's transport: the URL's target, TCP, the loopback source address, TLS, the upgrade.

Done here in a few lines instead of through ``websocket.create_connection``, which looks up
proxies in the environment, builds a fresh ``SSLContext`` per socket (loading the CA store each
time) and reads the upgrade answer one byte per ``recv`` call: ``bench/client_hold.py`` reports
the client CPU per connect of both (``--mode client`` against ``--mode naive``).

What the upgrade says (the request, the ``Authorization: jwt`` header, the accept key, the
answer's status) is :mod:`harness.protocol.handshake`'s; this module only moves its bytes.

Sockets to a loopback target (the emulator) leave from one of 64 loopback source addresses in
turn (:func:`_bind_loopback_source`): all sockets from one address to one host:port share one
ephemeral port range, and once about half of it is in use Linux searches it on every
``connect()`` (0.65 ms each at 18,000 held sockets, against 0.02 ms when spread).

gevent modules are used explicitly (``gevent.socket``, ``gevent.ssl``), so the transport behaves
the same in a monkey-patched Locust process and in a plain test process.
"""

from __future__ import annotations

import itertools
import os
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl

from harness.client.errors import ClientError, Dropped, HandshakeRejected, Timeout, typed
from harness.client.resolver import ip_literal_family
from harness.protocol import handshake, paths
from harness.protocol.retry import parse_retry_after

UPGRADE_RECV_SIZE: Final = 4096
LOOPBACK_SOURCES: Final = tuple(f"127.0.1.{n}" for n in range(1, 65))
_IP_BIND_ADDRESS_NO_PORT: Final = getattr(gsocket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2
_next_loopback_source = itertools.cycle(LOOPBACK_SOURCES).__next__

_BAD_HANDSHAKE: Final = "error BadHandshake"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a ``ws://`` or ``wss://`` URL points, parsed once per URL."""

    secure: bool
    host: str
    port: int
    resource: str
    host_header: str
    address: tuple[Any, ...] | None  # (family, sockaddr) for IP literals: no resolver call at all


@lru_cache(maxsize=64)
def target(url: str) -> Target:
    """The :class:`Target` of a WebSocket URL; ValueError for anything but ws:// or wss:// with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or paths.default_port(parts.scheme)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    packed = f"[{host}]" if ":" in host else host
    host_header = packed if port == paths.default_port(parts.scheme) else f"{packed}:{port}"
    family = ip_literal_family(host)
    address = (family, (host, port)) if family is not None else None
    return Target(secure, host, port, resource, host_header, address)


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


def _open_tcp(where: Target) -> gsocket.socket:
    if where.address is not None:
        candidates: Iterable[tuple[Any, ...]] = [where.address]
    else:
        candidates = [(info[0], info[4]) for info in gsocket.getaddrinfo(where.host, where.port, 0, gsocket.SOCK_STREAM)]
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
    raise error or OSError(f"no address for {where.host}")


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


def upgrade(sock: Any, where: Target, token: str | None, headers: Iterable[str] = ()) -> bytes:
    """Send the upgrade request on ``sock``, check the 101 answer; returns bytes read past its head.

    HandshakeRejected for another status; ClientError ``error BadHandshake`` for an unreadable
    status line, a wrong ``Sec-WebSocket-Accept`` or a head over
    :data:`~harness.protocol.handshake.MAX_RESPONSE_HEAD`; Dropped when the peer closes first.
    """
    key = handshake.client_key(os.urandom(16))
    sock.sendall(handshake.upgrade_request(where.resource, where.host_header, key, token, headers))
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > handshake.MAX_RESPONSE_HEAD:
            raise ClientError("upgrade response headers too long", category=_BAD_HANDSHAKE)
        chunk = sock.recv(UPGRADE_RECV_SIZE)
        if not chunk:
            raise Dropped("connection closed during the WebSocket upgrade")
        buf += chunk
    try:
        answer = handshake.parse_upgrade_answer(buf[:end], key)
    except handshake.HandshakeError as exc:
        raise ClientError(f"bad upgrade status line {exc.detail}", category=_BAD_HANDSHAKE) from None
    if answer.status != 101:  # a 429/503 may say when to come back: the user's backoff honours it
        retry_after = parse_retry_after(answer.headers.get("retry-after"), time.time())
        raise HandshakeRejected(answer.status, retry_after=retry_after)
    if not answer.accepted:
        raise ClientError("bad Sec-WebSocket-Accept in the upgrade response", category=_BAD_HANDSHAKE)
    return buf[end + 4 :]


def open_upgraded(
    url: str,
    token: str | None,
    *,
    timeout: float,
    verify_tls: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    headers: Iterable[str] = (),
) -> tuple[gsocket.socket, bytes]:
    """TCP (+ TLS) + upgrade to ``url`` within ``timeout`` s: the upgraded socket and bytes read past it.

    Every failure comes out typed (:func:`harness.client.errors.typed`): HandshakeRejected,
    Refused, Timeout, TlsError, Dropped, or ClientError with its category.
    """
    where = target(url)
    timer = gevent.Timeout(timeout)
    timer.start()
    sock = None
    try:
        sock = _open_tcp(where)
        if where.secure:
            sock = _wrap_tls(sock, ssl_context or tls_context(verify_tls), where.host)
        leftover = upgrade(sock, where, token, headers)
    except gevent.Timeout as exc:
        if sock is not None:
            sock.close()
        if exc is not timer:
            raise
        raise Timeout(f"connect to {where.host}:{where.port} took over {timeout} s") from None
    except BaseException as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, ClientError) or not isinstance(exc, Exception):
            raise
        raise typed(exc) from exc
    finally:
        timer.close()
    return sock, leftover
