"""How the client uses TCP connections: what a load generator holding thousands of sockets needs.

Real sockets on loopback against the real emulator; no counts are mocked.
"""

from __future__ import annotations

import contextlib
import os
import socket

import gevent
import gevent.event
import pytest
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from harness.client import ConsumerSocket
from harness.client.idp import IdpClient
from harness.client.keepalive import install_keepalive_check
from tests.client.support import ACCOUNT


@contextlib.contextmanager
def _descriptors_above_1024():
    """Hold enough descriptors that every new socket's number is above select()'s limit."""
    held = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd > 1100:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)


def test_token_phase_reuses_its_connection_past_1024_descriptors(emulator, monkeypatch) -> None:
    """anonymous-authorize and authenticate share one connection even when its fd is > 1023."""
    from geventhttpclient.connectionpool import ConnectionPool

    install_keepalive_check()
    emu = emulator()
    opened: list[int] = []
    create = ConnectionPool._create_socket

    def counting_create(self):  # observes geventhttpclient's pool; the sockets are real
        sock = create(self)
        opened.append(sock.fileno())
        return sock

    monkeypatch.setattr(ConnectionPool, "_create_socket", counting_create)
    with _descriptors_above_1024():
        http = FastHttpSession(emu.url, request_event=EventHook(), user=None, max_retries=0)
        idp = IdpClient(http, ACCOUNT)
        idp.authenticate(idp.anonymous_authorize())
        http.client.close()
    assert len(opened) == 1 and opened[0] > 1023, f"the token phase opened connections {opened}"


def test_keepalive_check_tells_idle_from_closed_above_1024() -> None:
    install_keepalive_check()
    from geventhttpclient.connectionpool import ConnectionPool

    check = ConnectionPool._is_socket_alive
    with _descriptors_above_1024():
        a, b = socket.socketpair()
        try:
            assert a.fileno() > 1023
            assert check(None, a) is True  # idle: reusable
            b.sendall(b"x")
            assert check(None, a) is False  # unread bytes: not reusable
            a.recv(1)
            b.close()
            assert check(None, a) is False  # the peer closed
        finally:
            a.close()
            b.close()


def test_loopback_sockets_leave_from_spread_source_addresses(session) -> None:
    """Each socket to a loopback target takes the next 127.0.1.x source: its own port range."""
    emu, url, token = session()
    socks = [ConsumerSocket.connect(url, token, timeout=5, ping_interval=None) for _ in range(3)]
    try:
        sources = [s._sock.getsockname()[0] for s in socks]
        if not all(src.startswith("127.0.1.") for src in sources):
            pytest.skip(f"this host does not route 127.0.1.0/24 to loopback ({sources})")
        assert len(set(sources)) == 3, sources
        assert all(s.open for s in socks)
    finally:
        for s in socks:
            s.close()


def _close_echoing_peer(seen: list[str], done: gevent.event.Event):
    """A minimal WebSocket server that echoes the client's close frame, then waits before its FIN.

    It records whether the client's FIN came first ("client closed first") or the client waited
    for the server's ("client waited"). The emulator sends its FIN right behind the echo, so only a
    peer that lingers can tell the two apart.
    """
    import base64
    import hashlib

    from gevent.server import StreamServer

    def handle(sock, _addr):
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        frame = sock.recv(4096)
        assert frame[0] == 0x88, frame  # the client's close frame
        sock.sendall(b"\x88\x02\x03\xe8")  # echo: 1000
        sock.settimeout(0.3)
        try:
            seen.append("client closed first" if sock.recv(1) == b"" else "bytes after close")
        except OSError:
            seen.append("client waited")
        sock.close()
        done.set()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def test_client_lets_the_server_close_tcp_first() -> None:
    """After the close frames the client waits for the server's FIN (RFC 6455 7.1.1), so the
    TIME_WAIT is the server's and not one of the load generator's ports."""
    seen: list[str] = []
    done = gevent.event.Event()
    server = _close_echoing_peer(seen, done)
    try:
        url = f"ws://127.0.0.1:{server.server_port}/ws_api/account/{ACCOUNT}/messaging/consumer?v=3"
        sock = ConsumerSocket.connect(url, "not-checked", timeout=5, ping_interval=None)
        assert sock.close(timeout=5).kind == "clean"
        assert done.wait(timeout=5)
        assert seen == ["client waited"], seen
    finally:
        server.stop()
