"""The transport without a network: URL targets, and the upgrade's answers mapped to failure types.

The upgrade runs over a scripted stand-in socket; the server's answer is built with the protocol
core's own accept key, so only the client's reading of it is under test here.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable

import pytest

from harness.client import ClientError, Dropped, HandshakeRejected, Refused, Timeout, TlsError
from harness.client.errors import typed
from harness.client.transport import target, upgrade
from harness.protocol import handshake


class ScriptedSocket:
    """Records what is sent; answers each ``recv`` from ``answer(request_bytes)``, chunk by chunk."""

    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self.answer = answer
        self.sent = b""
        self.chunks: list[bytes] | None = None

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, _size: int) -> bytes:
        if self.chunks is None:
            self.chunks = self.answer(self.sent)
        return self.chunks.pop(0) if self.chunks else b""


def _key_of(request: bytes) -> bytes:
    match = re.search(rb"Sec-WebSocket-Key: (\S+)\r\n", request)
    assert match, request
    return match.group(1)


def _switching(request: bytes, accept: bytes | None = None) -> bytes:
    accept = accept if accept is not None else handshake.accept_key(_key_of(request))
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


WHERE = target("ws://127.0.0.1:8080/ws_api/account/a1/messaging/consumer?v=3")


def test_targets() -> None:
    assert (WHERE.secure, WHERE.host, WHERE.port, WHERE.host_header) == (False, "127.0.0.1", 8080, "127.0.0.1:8080")
    assert WHERE.resource == "/ws_api/account/a1/messaging/consumer?v=3"
    assert WHERE.address is not None  # an IP literal: no resolver call
    secure = target("wss://va.msg.liveperson.net/x")
    assert (secure.secure, secure.port, secure.host_header, secure.address) == (True, 443, "va.msg.liveperson.net", None)
    assert target("ws://[::1]:9/").host_header == "[::1]:9"
    for bad in ("http://example.com/", "ws:///nohost"):
        with pytest.raises(ValueError):
            target(bad)


def test_upgrade_sends_the_protocols_request_and_keeps_bytes_past_the_head() -> None:
    sock = ScriptedSocket(lambda req: [_switching(req)[:20], _switching(req)[20:] + b"\x81\x02hi"])
    assert upgrade(sock, WHERE, "tok", ["X-Extra: 1"]) == b"\x81\x02hi"
    request = sock.sent
    assert request.startswith(b"GET /ws_api/account/a1/messaging/consumer?v=3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"\r\nAuthorization: jwt tok\r\n" in request
    assert request.endswith(b"\r\nX-Extra: 1\r\n\r\n")
    assert handshake.valid_client_key(_key_of(request))


@pytest.mark.parametrize("status", [401, 403, 503])
def test_another_status_is_a_rejection(status: int) -> None:
    sock = ScriptedSocket(lambda _req: [f"HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n".encode()])
    with pytest.raises(HandshakeRejected) as caught:
        upgrade(sock, WHERE, "tok")
    assert (caught.value.status, caught.value.category) == (status, f"handshake {status}")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda req: [b"SPDY/9 what\r\n\r\n"], "bad upgrade status line"),
        (lambda req: [_switching(req, accept=b"d3Jvbmc=")], "bad Sec-WebSocket-Accept"),
        (lambda req: [b"HTTP/1.1 101 OK\r\n" + b"X-Pad: " + b"x" * (handshake.MAX_RESPONSE_HEAD + 10)], "too long"),
    ],
)
def test_a_broken_answer_is_a_bad_handshake(answer: Callable[[bytes], list[bytes]], message: str) -> None:
    with pytest.raises(ClientError) as caught:
        upgrade(ScriptedSocket(answer), WHERE, "tok")
    assert type(caught.value) is ClientError
    assert caught.value.category == "error BadHandshake"
    assert message in str(caught.value)


def test_end_of_stream_during_the_upgrade_is_a_drop() -> None:
    with pytest.raises(Dropped):
        upgrade(ScriptedSocket(lambda _req: [b"HTTP/1.1 101 Swit"]), WHERE, "tok")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), Refused),
        (TimeoutError("timed out"), Timeout),
        (ConnectionResetError(104, "reset"), Dropped),
        (ssl.SSLCertVerificationError(1, "verify failed"), TlsError),
    ],
)
def test_typed_failures(exc: BaseException, kind: type[ClientError]) -> None:
    error = typed(exc)
    assert type(error) is kind
    assert type(exc).__name__ in str(error)
    assert typed(error) is error
    other = typed(KeyError("x"))
    assert (type(other), other.category) == (ClientError, "error KeyError")
