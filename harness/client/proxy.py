"""Through an HTTP proxy: the CONNECT tunnel the WebSocket opens, and the same proxy for the IDP's calls.

Which proxy a URL goes through (``--lp-proxy``, else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
as requests reads them, never the environment's for the embedded emulator) is decided by
:func:`harness.settings_network.choose_proxy`; here is what is done with it. The WebSocket asks
the proxy for a tunnel (``CONNECT host:port``, ``Proxy-Authorization: Basic`` from the URL's
credentials, for ws as for wss: a proxy that allows the port carries either), then TLS and the
upgrade run inside it as they would over a direct connection. The IDP's calls go through
geventhttpclient's own proxy support (:func:`http_session_options`): a CONNECT tunnel for an
https IDP, the absolute-URI form for an http one.

A proxy that refuses -- its port closed, 407 (credentials), 403 (a port or host it does not
allow), 5xx (it could not reach the target) -- fails the step with :class:`ProxyError`: category
``proxy refused`` / ``proxy 407`` / ``proxy 403`` / ``proxy 502``..., and one line naming the
proxy by ``host:port`` (never its password), the setting it came from and the fix.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any, Final

from harness.client.errors import ClientError, ProxyError
from harness.settings_network import ProxyUrl

CONNECT_RECV_SIZE: Final = 1024
MAX_CONNECT_HEAD: Final = 16384  # a CONNECT answer's head longer than this is not a proxy's
_BAD: Final = "proxy bad answer"
_REFUSED_ERRNOS: Final = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


def connect_request(host: str, port: int, authorization: str | None = None) -> bytes:
    """The CONNECT request for ``host:port`` (an IPv6 literal in brackets), with the proxy's credentials."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if authorization:
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_connect_answer(head: bytes) -> tuple[int, str]:
    """(status, reason) of a CONNECT answer's head; ValueError when its status line is not HTTP's."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP status line: {line[:60]!r}")
    return int(code), "".join(c for c in reason if c.isprintable())[:60].strip()


def tunnel(sock: Any, proxy: ProxyUrl, host: str, port: int) -> None:
    """Ask ``proxy`` (``sock`` is connected to it) for a tunnel to ``host:port``; ProxyError unless it says 200.

    The answer is read whole before anything else is sent; a target never speaks first on a
    WebSocket or TLS connection, so nothing can follow it, and anything that does is an error.
    """
    sock.sendall(connect_request(host, port, proxy.authorization))
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_CONNECT_HEAD:
            raise ProxyError(
                f"proxy {proxy.where} answered CONNECT with a head over {MAX_CONNECT_HEAD} bytes", category=_BAD
            )
        chunk = sock.recv(CONNECT_RECV_SIZE)
        if not chunk:
            raise ProxyError(
                f"proxy {proxy.where} ({proxy.origin}) closed the connection before answering CONNECT "
                f"{host}:{port}: {proxy.fix()}",
                category="proxy dropped",
            )
        buf += chunk
    try:
        status, reason = parse_connect_answer(buf)
    except ValueError as exc:
        raise ProxyError(
            f"proxy {proxy.where} answered CONNECT with {exc}: is it an HTTP proxy?", category=_BAD
        ) from None
    if not 200 <= status < 300:  # any 2xx opens the tunnel (RFC 9110, 9.3.6)
        raise refusal(proxy, status, reason, host, port)
    if len(buf) > end + 4:
        raise ProxyError(f"proxy {proxy.where} sent bytes past its answer to CONNECT {host}:{port}", category=_BAD)


def open_tunnel(proxy: ProxyUrl, host: str, port: int, connect: Callable[[str, int], Any]) -> Any:
    """``connect`` to ``proxy``, then its tunnel to ``host:port``: the socket inside the tunnel.

    A connection to the proxy that fails is the proxy's (:func:`unreachable`); a refused CONNECT
    is :func:`tunnel`'s ProxyError; an OSError during the CONNECT is left to the caller to name.
    """
    try:
        sock = connect(proxy.host, proxy.port)
    except OSError as exc:  # refused, unreachable, unknown name: the proxy's, and said so
        raise unreachable(proxy, exc) from None
    try:
        tunnel(sock, proxy, host, port)
    except BaseException:
        sock.close()
        raise
    return sock


def refusal(proxy: ProxyUrl, status: int, reason: str, host: str, port: int) -> ProxyError:
    """The error of a CONNECT (or proxied request) answered ``status``: what it means and the fix."""
    said = f"proxy {proxy.where} ({proxy.origin}) answered {status} {reason}".rstrip()
    if status in (401, 407):  # tinyproxy answers wrong credentials with 401
        if proxy.authorization is None:
            fix = f"it wants credentials: give them in the URL, http://user:password@{proxy.where}"
        else:
            fix = f"it refused the credentials in the URL: check the user and password given for {proxy.where}"
        return ProxyError(f"{said} to CONNECT {host}:{port}: {fix}", status=status)
    if status == 403:
        fix = "allow that port/host on the proxy (tinyproxy: ConnectPort; squid: SSL_ports), or " + proxy.fix()
        return ProxyError(f"{said}: it does not allow CONNECT to {host}:{port}: {fix}", status=status)
    if status >= 500:
        return ProxyError(
            f"{said}: it could not reach {host}:{port}: check the target host and port, and that the proxy can reach it",
            status=status,
        )
    return ProxyError(f"{said} to CONNECT {host}:{port}: {proxy.fix()}", status=status)


def unreachable(proxy: ProxyUrl, exc: BaseException) -> ProxyError:
    """The connection to the proxy itself failed (refused, unreachable, unknown host)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ProxyError(
        f"proxy {proxy.where} ({proxy.origin}) cannot be reached ({reason}): is it running? {proxy.fix()}"
    )


def http_session_options(proxy: ProxyUrl | None) -> dict[str, Any]:
    """FastHttpSession's keywords for ``proxy`` (geventhttpclient's own support), none for a direct session."""
    if proxy is None:
        return {}
    return {
        "proxy_host": proxy.host,
        "proxy_port": proxy.port,
        "proxy_user": proxy.username,
        "proxy_password": proxy.password,
    }


def requests_proxies(proxy: ProxyUrl | None) -> dict[str, str]:
    """requests' ``proxies`` for the route already chosen: requests then adds none of its own from the
    environment (``no_proxy: *`` for a direct one), and its other environment settings (CA bundle) still apply."""
    return {"no_proxy": "*"} if proxy is None else {"http": proxy.url, "https": proxy.url}


def http_failure(exc: BaseException, proxy: ProxyUrl, host: str, port: int) -> BaseException:
    """A proxied HTTP call's transport failure, as the ProxyError it is when the proxy caused it.

    Every connection a proxied session opens is to the proxy, so a refused or unreachable one is
    the proxy's; geventhttpclient reports a refused CONNECT as ``RuntimeError("Proxy CONNECT
    failed: <status line>")``. Anything else is returned as it is.
    """
    if isinstance(exc, ClientError):
        return exc
    text = str(exc)
    if isinstance(exc, RuntimeError) and "Proxy CONNECT failed:" in text:
        try:
            status, reason = parse_connect_answer(text.split("Proxy CONNECT failed:", 1)[1].strip().encode("latin-1"))
        except ValueError:
            return ProxyError(f"proxy {proxy.where} ({proxy.origin}) refused CONNECT {host}:{port}", category=_BAD)
        return refusal(proxy, status, reason, host, port)
    if isinstance(exc, RuntimeError) and "Proxy closed the connection" in text:
        return ProxyError(
            f"proxy {proxy.where} ({proxy.origin}) closed the connection before answering CONNECT {host}:{port}",
            category="proxy dropped",
        )
    if isinstance(exc, socket.gaierror) or (isinstance(exc, OSError) and exc.errno in _REFUSED_ERRNOS):
        return unreachable(proxy, exc)
    return exc
