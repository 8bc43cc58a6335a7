"""A consumer socket's transport: the URL's target, TCP (source address, proxy tunnel), TLS, the upgrade.

Done here in a few lines instead of through ``websocket.create_connection``, which looks up
proxies in the environment, builds a fresh ``SSLContext`` per socket (loading the CA store each
time) and reads the upgrade answer one byte per ``recv`` call: ``bench/client_hold.py`` reports
the client CPU per connect of both (``--mode client`` against ``--mode naive``).

What the upgrade says (the request, the ``Authorization: jwt`` header, the accept key, the
answer's status) is :mod:`harness.protocol.handshake`'s; this module only moves its bytes.

How the TCP connection is made is the process's :class:`Route`, set once per process from the
run's settings (:func:`use_route`): the source address each socket leaves from in turn
(:mod:`harness.client.sources`: by default 64 loopback addresses for a loopback target, or
``--lp-source-addresses``) and the HTTP proxy, if any, whose CONNECT tunnel the TLS and the
upgrade then run in (:mod:`harness.client.proxy`). Without one, the transport connects
directly, spreading loopback sockets, and reads no proxy from the environment.

gevent modules are used explicitly (``gevent.socket``, ``gevent.ssl``), so the transport behaves
the same in a monkey-patched Locust process and in a plain test process.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl

from harness.client.errors import ClientError, Dropped, HandshakeRejected, Timeout, typed
from harness.client.proxy import open_tunnel
from harness.client.resolver import ip_literal_family
from harness.client.sources import LOOPBACK, SourceAddresses, connect_tcp
from harness.protocol import handshake, paths
from harness.protocol.retry import parse_retry_after
from harness.settings_network import DIRECT, ProxyUrl, choose_proxy

if TYPE_CHECKING:
    from harness.settings import Settings

UPGRADE_RECV_SIZE: Final = 4096

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


@dataclass(frozen=True, slots=True)
class Route:
    """How this process's sockets reach their targets: the ``--lp-proxy`` setting and the source addresses.

    ``embedded``: the target is the emulator the harness started (the environment's proxies do
    not apply to it). The default route is direct, spreading loopback sockets.
    """

    proxy: str = DIRECT
    embedded: bool = False
    sources: SourceAddresses = LOOPBACK

    def proxy_for(self, url: str) -> ProxyUrl | None:
        """The proxy a connection to ``url`` goes through, None for a direct one (decided once per URL)."""
        return _proxy_for(url, self.proxy, self.embedded)


@lru_cache(maxsize=64)
def _proxy_for(url: str, setting: str, embedded: bool) -> ProxyUrl | None:
    return choose_proxy(url, setting, embedded=embedded)


_route = Route()


def route_of(settings: Settings) -> Route:
    """The route a run's settings say: their proxy, and their source addresses or the loopback spread."""
    sources = SourceAddresses(settings.source_addresses, strict=True) if settings.source_addresses else LOOPBACK
    return Route(settings.proxy, settings.target == "emulator", sources)


def use_route(route: Route) -> Route:
    """Make ``route`` this process's (every user of a run has the same settings); returns the previous one."""
    global _route
    previous, _route = _route, route
    return previous


def install_route(settings: Settings) -> Route:
    """The run's route, made this process's once: each user calls it, and the source addresses keep turning."""
    made_from = (_route.proxy, _route.embedded, _route.sources.addresses if _route.sources.strict else ())
    if made_from != (settings.proxy, settings.target == "emulator", settings.source_addresses):
        use_route(route_of(settings))
    return _route


def _open_tcp(where: Target, route: Route, proxy: ProxyUrl | None) -> gsocket.socket:
    """TCP to the target, or to the proxy and through its tunnel to the target, from the route's source address."""
    if proxy is None:
        return connect_tcp(where.host, where.port, route.sources, where.address)
    return open_tunnel(proxy, where.host, where.port, lambda host, port: connect_tcp(host, port, route.sources))


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
    route = _route
    proxy = route.proxy_for(url)
    timer = gevent.Timeout(timeout)
    timer.start()
    sock = None
    try:
        sock = _open_tcp(where, route, proxy)
        if where.secure:
            sock = _wrap_tls(sock, ssl_context or tls_context(verify_tls), where.host)
        leftover = upgrade(sock, where, token, headers)
    except gevent.Timeout as exc:
        if sock is not None:
            sock.close()
        if exc is not timer:
            raise
        via = f" through proxy {proxy.where}" if proxy is not None else ""
        raise Timeout(f"connect to {where.host}:{where.port}{via} took over {timeout} s") from None
    except BaseException as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, ClientError) or not isinstance(exc, Exception):
            raise
        raise typed(exc) from exc
    finally:
        timer.close()
    return sock, leftover
