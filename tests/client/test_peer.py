"""ConsumerSocket against a scripted peer: answers the emulator never gives, and connect's own checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gevent
import gevent.event
import pytest
from gevent.server import StreamServer

from harness.client import ConsumerSocket, ServerClosed
from harness.protocol import handshake

Script = Callable[[object], None]


@pytest.fixture
def peer() -> Iterator[Callable[[Script], str]]:
    """``peer(script)`` -> a ws:// URL whose server upgrades each connection, then runs ``script(sock)``."""
    servers: list[StreamServer] = []

    def start(script: Script) -> str:
        def handle(sock, _addr) -> None:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + handshake.accept_key(key) + b"\r\n\r\n"
            )
            script(sock)

        server = StreamServer(("127.0.0.1", 0), handle)
        server.start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.server_port}/ws_api/account/a1/messaging/consumer?v=3"

    yield start
    for server in servers:
        server.stop()


def test_a_close_frame_with_no_code_is_1005(peer) -> None:
    def script(sock) -> None:
        sock.sendall(b"\x88\x00")  # close, no payload
        gevent.sleep(0.1)
        sock.close()

    ws = ConsumerSocket.connect(peer(script), "tok", timeout=5, ping_interval=None)
    info = ws.wait_closed(5)
    assert info is not None and (info.kind, info.code, info.reason) == ("server", 1005, "")
    assert info.category == "close 1005"
    with pytest.raises(ServerClosed) as caught:
        ws.request("GetClock")
    assert caught.value.category == "close 1005"


def test_a_wrong_keyword_leaves_no_socket_open(peer) -> None:
    ended = gevent.event.Event()

    def script(sock) -> None:
        while sock.recv(4096):
            pass
        ended.set()  # the client closed its end

    with pytest.raises(TypeError):
        ConsumerSocket.connect(peer(script), "tok", timeout=5, ping_every=5)
    assert ended.wait(5)


def _read_client_frame(sock) -> bytes:
    """One masked client frame's payload (small frames only: what a request is)."""
    head = sock.recv(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(sock.recv(2), "big")
    mask = sock.recv(4)
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _server_frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


def test_a_request_is_timed_to_its_answer_read_not_to_its_caller_resuming(peer) -> None:
    """The answer and a notification arrive together; the notification's handler holds the loop 80 ms
    before the caller resumes. The caller waited that long; the target answered at once: last_answer_s."""
    import json
    import time

    def script(sock) -> None:
        request = json.loads(_read_client_frame(sock))
        answer = {"kind": "resp", "reqId": request["id"], "type": "GetClockResponse", "code": 200, "body": {}}
        note = {"kind": "notification", "type": "ms.MessagingEventNotification", "body": {}}
        sock.sendall(_server_frame(json.dumps(answer)) + _server_frame(json.dumps(note)))  # one write: one read
        while sock.recv(4096):
            pass

    def hold_the_loop(*_: object) -> None:
        until = time.perf_counter() + 0.08
        while time.perf_counter() < until:  # never yields: nothing else runs, as on a busy generator's loop
            pass

    ws = ConsumerSocket.connect(
        peer(script), "tok", timeout=5, ping_interval=None, on_notification=hold_the_loop, on_bad_frame=hold_the_loop
    )
    started = time.perf_counter()
    ws.request("GetClock", timeout=5)
    waited = time.perf_counter() - started
    ws.abort("the test is over")  # the scripted peer answers no close frame
    assert waited >= 0.08, waited  # the caller resumed after the handler
    assert ws.last_answer_s < 0.04, (ws.last_answer_s, waited)  # the answer was read at once
