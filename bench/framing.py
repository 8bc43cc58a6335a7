"""CPU per WebSocket framing operation: today's private-API paths against wsproto (public, sans-I/O).

    .venv/bin/python bench/framing.py --out bench/results/framing.json
    .venv/bin/python bench/framing.py --iterations 2000 --repeats 3     # smoke run, a few seconds

Why: the client frames with websocket-client's ``frame_buffer``/``continuous_frame`` (from the
private ``websocket._abnf``) and the emulator's fast lane reads with aiohttp's
``aiohttp._websocket.reader.WebSocketDataQueue`` + ``WebSocketReader`` (C). wsproto would be the
public replacement for both; it is only worth switching to if it costs no CPU, so this measures
each operation the two sides do per connection and per frame, in-process, bytes fed directly
(no sockets, no event loop running): the framing code alone.

Method: ``time.process_time`` around ``--iterations`` calls, ``--repeats`` times; the cases take
turns within each repeat so that other load on the machine hits every case alike; min and
median microseconds per operation. Every case first checks its own output (the frame parses
back, the handshake is accepted), so a case cannot be fast by doing nothing. "Retained bytes"
is what one connection's framing state keeps allocated (tracemalloc, 1,000 of them held; the
socket, protocol and transport that exist either way are not counted).

The "today" code is a faithful copy of the harness's calls as they were when measured (the
client's upgrade, frame building and read loop, now ``harness/client/transport.py`` ``upgrade``
and ``harness/client/framing.py``; the emulator fast lane's request parsing, upgrade and
``FastSocket``), frozen here so the baseline stays the same while the harness moves around it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import gc
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
import websocket
import wsproto
import wsproto.handshake
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, WS_KEY, WebSocketReader, WebSocketWriter, WSMsgType
from websocket import ABNF
from websocket._abnf import continuous_frame, frame_buffer
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Pong, Request, TextMessage
from wsproto.frame_protocol import FrameProtocol, Opcode

# ----------------------------------------------------------------------------- payloads

ACCOUNT = "qa57221676"
RESOURCE = f"/ws_api/account/{ACCOUNT}/messaging/consumer?v=3"
HOST = "127.0.0.1:8443"
TOKEN = ("eyJhbGciOiJSUzI1NiJ9." + "A" * 560 + "." + "s" * 342).encode()  # an RS256 JWT's size
FIXED_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key (1.3)
CLIENT_TEXT = (  # a request envelope, ~150 bytes
    '{"kind":"req","id":"17","type":"cm.ConsumerRequestConversation",'
    '"body":{"brandId":"qa57221676","channelType":"MESSAGING","ttrDefName":"NORMAL"}}'
)
SERVER_TEXT = (  # a response envelope, ~200 bytes
    '{"kind":"resp","reqId":"17","code":200,"type":"cm.RequestConversationResponse",'
    '"body":{"conversationId":"5b7c9a4e-1f3d-4c2b-9e8a-7d6f5e4c3b2a","state":"OPEN",'
    '"stage":"OPEN","startTs":1764547200000}}'
)
MASK = b"\x37\xfa\x21\x3d"

READ_LIMIT = 2**16  # as fastlane.py
MAX_MSG_SIZE = 1024 * 1024
_SERVER = SERVER_SOFTWARE.encode()
_WS_PATH = re.compile(rb"/ws_api/account/([^/{}%]+)/messaging/consumer")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def raw_frame(opcode: int, payload: bytes, mask: bytes | None) -> bytes:
    """One final frame, built by hand (independent of every library measured here)."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes((bit | n,))
    else:
        head += bytes((bit | 126,)) + n.to_bytes(2, "big")
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def unmask(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one final frame, masked or not (to check what a builder produced)."""
    n, at = frame[1] & 0x7F, 2
    if n == 126:
        n, at = int.from_bytes(frame[2:4], "big"), 4
    if frame[1] & 0x80:
        mask, at = frame[at : at + 4], at + 4
        return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(frame[at : at + n]))
    return frame[0] & 0x0F, frame[at : at + n]


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_KEY).digest())


def head(status: int, extra: bytes) -> bytes:
    """fastlane.py's ``_head`` (aiohttp's exact status line and headers)."""
    return b"HTTP/1.1 %d %s\r\n%sDate: %s\r\nServer: %s\r\n\r\n" % (
        status,
        _REASONS.get(status, b""),
        extra,
        rfc822_formatted_time().encode(),
        _SERVER,
    )


ANSWER_101 = head(
    101, b"Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: %s\r\n" % accept_for(FIXED_KEY)
)
UPGRADE_REQUEST = (
    f"GET {RESOURCE} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
    f"Connection: Upgrade\r\nSec-WebSocket-Key: {FIXED_KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n"
    f"Authorization: jwt {TOKEN.decode()}\r\n\r\n"
).encode("latin-1")

# Frames on the wire in each direction.
S2C_TEXT = raw_frame(0x1, SERVER_TEXT.encode(), None)
S2C_PONG = raw_frame(0xA, b"", None)
S2C_PING = raw_frame(0x9, b"", None)
C2S_TEXT = raw_frame(0x1, CLIENT_TEXT.encode(), MASK)
C2S_PING = raw_frame(0x9, b"", MASK)


def new_nonce() -> bytes:
    """Both clients draw a key as ``base64(os.urandom(16))``; the cost is kept, the key fixed
    so that one precomputed 101 answer serves every iteration."""
    base64.b64encode(os.urandom(16))
    return FIXED_KEY


wsproto.handshake.generate_nonce = new_nonce  # wsproto's client calls it per handshake


# ----------------------------------------------------------------------------- helpers


class _NoLock:
    """harness/client/socket.py's ``_NO_LOCK`` (only the reader reads)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


class FakeTransport:
    """What aiohttp's writer needs of a transport; keeps the last write to check it."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = b""

    def write(self, data: bytes) -> None:
        self.last = data

    def is_closing(self) -> bool:
        return False


def done(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that must finish without suspending (buffered data, writable transport)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine suspended")


LOOP = asyncio.new_event_loop()  # never run: the queue only needs one to create futures


def replay(data: bytes) -> Callable[[int], bytes]:
    """A ``recv`` that returns one whole frame per call, as a 4 KiB ``recv`` does on a live socket."""

    def recv(_bufsize: int) -> bytes:
        return data

    return recv


# ----------------------------------------------------------------------------- client: today


def today_client_state(recv: Callable[[int], bytes]) -> tuple[frame_buffer, continuous_frame]:
    fb = frame_buffer(recv, True)
    fb.lock = _NO_LOCK
    return fb, continuous_frame(False, True)


def today_client_handshake(recv: Callable[[int], bytes]) -> tuple[bytes, frame_buffer, continuous_frame]:
    """``_handshake`` of harness/client/socket.py with the socket replaced by bytes, then the
    reader's framing state (``ConsumerSocket.__init__``)."""
    key = new_nonce()
    request = (
        f"GET {RESOURCE} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: jwt {TOKEN.decode()}\r\n\r\n"
    ).encode("latin-1")
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > 16384:
            raise ValueError("upgrade response headers too long")
        buf += ANSWER_101  # one recv
    lines = buf[:end].decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if int(status_line[1]) != 101:
        raise ValueError("not 101")
    accept = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-accept":
            accept = value.strip()
    if accept != base64.b64encode(hashlib.sha1(key + WS_KEY).digest()).decode():
        raise ValueError("bad accept")
    fb, cont = today_client_state(recv)
    leftover = buf[end + 4 :]
    if leftover:
        fb.recv_buffer.append(leftover)
    return request, fb, cont


def today_build_text() -> bytes:
    return ABNF.create_frame(CLIENT_TEXT, ABNF.OPCODE_TEXT).format()


def today_read(fb: frame_buffer, cont: continuous_frame) -> tuple[int, Any]:
    """One turn of ``_read_loop``'s dispatch (what the reader does per frame, less the handlers)."""
    frame = fb.recv_frame()
    op = frame.opcode
    if op == ABNF.OPCODE_TEXT and frame.fin and not cont.recving_frames:
        return op, frame.data
    if op == ABNF.OPCODE_PONG:
        return op, None
    if op == ABNF.OPCODE_PING:
        return op, ABNF.create_frame(frame.data, ABNF.OPCODE_PONG).format()
    raise AssertionError(op)


# ----------------------------------------------------------------------------- client: wsproto


def wsproto_client_handshake() -> tuple[bytes, WSConnection]:
    conn = WSConnection(ConnectionType.CLIENT)
    request = conn.send(Request(host=HOST, target=RESOURCE, extra_headers=[(b"Authorization", b"jwt " + TOKEN)]))
    conn.receive_data(ANSWER_101)
    for event in conn.events():
        if isinstance(event, AcceptConnection):
            return request, conn
    raise AssertionError("not accepted")


def fp_read(fp: FrameProtocol, data: bytes) -> tuple[int, Any]:
    """FrameProtocol per frame: what a reader on it would do (ping answered by hand)."""
    fp.receive_bytes(data)
    for frame in fp.received_frames():
        op = frame.opcode
        if op is Opcode.TEXT and frame.message_finished:
            return op, frame.payload
        if op is Opcode.PONG:
            return op, None
        if op is Opcode.PING:
            return op, fp.pong(frame.payload)
        raise AssertionError(op)
    raise AssertionError("no frame")


def conn_read(conn: WSConnection, data: bytes) -> tuple[str, Any]:
    """WSConnection per frame (it answers a ping with ``event.response()``)."""
    conn.receive_data(data)
    for event in conn.events():
        if isinstance(event, TextMessage) and event.message_finished:
            return "text", event.data
        if isinstance(event, Pong):
            return "pong", None
        if isinstance(event, Ping):
            return "ping", conn.send(event.response())
        raise AssertionError(event)
    raise AssertionError("no event")


# ----------------------------------------------------------------------------- server: today


@dataclass(slots=True)
class AiohttpSocket:
    """``FastSocket.__init__``'s reader, queue and writer."""

    queue: Any
    reader: Any
    writer: Any
    transport: FakeTransport


def today_server_objects(lane: BaseProtocol, transport: FakeTransport) -> tuple[Any, Any, Any]:
    """What the fast lane adds to an upgraded connection (the protocol and transport exist anyway)."""
    queue = WebSocketDataQueue(lane, READ_LIMIT, loop=LOOP)
    reader = WebSocketReader(queue, MAX_MSG_SIZE, compress=False, decode_text=True)
    writer = WebSocketWriter(lane, transport, limit=READ_LIMIT, compress=0)  # type: ignore[arg-type]
    return queue, reader, writer


def today_server_state() -> AiohttpSocket:
    transport = FakeTransport()
    return AiohttpSocket(*today_server_objects(BaseProtocol(LOOP), transport), transport)


SHARED_LANE, SHARED_TRANSPORT = BaseProtocol(LOOP), FakeTransport()


def today_parse_head(buf: bytes) -> tuple[int, dict[bytes, bytes]] | None:
    """``FastLane._process`` up to the upgrade branch (headers into a dict, the shape checks)."""
    end = buf.find(b"\r\n\r\n")
    lines = bytes(buf[:end]).split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[2] != b"HTTP/1.1":
        return None
    method, target, _ = request_line
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        key = name.lower()
        if not sep or not name or b" " in name or b"\t" in name or key in headers:
            return None
        headers[key] = value.strip(b" \t")
    if b"transfer-encoding" in headers or b"expect" in headers:
        return None
    connection = headers.get(b"connection", b"").lower()
    path = target.partition(b"?")[0]
    if method != b"GET" or b"upgrade" not in connection:
        return None
    m = _WS_PATH.fullmatch(path)
    if m is None or b"content-length" in headers:
        return None
    m.group(1).decode()
    return end, headers


def today_upgrade(headers: dict[bytes, bytes]) -> bytes | None:
    """``FastLane._upgrade`` for a good handshake, less the token check (the same for any framing)."""
    if (
        headers.get(b"upgrade", b"").lower() != b"websocket"
        or b"upgrade" not in [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
        or headers.get(b"sec-websocket-version") != b"13"
        or b"sec-websocket-protocol" in headers
    ):
        return None
    key = headers.get(b"sec-websocket-key", b"")
    try:
        if len(base64.b64decode(key)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    if headers.get(b"authorization") is None:
        return None
    accept = base64.b64encode(hashlib.sha1(key + WS_KEY).digest())
    return head(101, b"Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: %s\r\n" % accept)


def today_server_handshake() -> tuple[bytes, tuple[Any, Any, Any]]:
    parsed = today_parse_head(UPGRADE_REQUEST)
    assert parsed is not None
    answer = today_upgrade(parsed[1])
    assert answer is not None
    return answer, today_server_objects(SHARED_LANE, SHARED_TRANSPORT)


def today_server_frame_protocol_handshake() -> tuple[bytes, FrameProtocol]:
    """The fast lane's own upgrade (no private API in it) with wsproto's frames behind it."""
    parsed = today_parse_head(UPGRADE_REQUEST)
    assert parsed is not None
    answer = today_upgrade(parsed[1])
    assert answer is not None
    return answer, FrameProtocol(client=False, extensions=[])


def today_server_read(sock: AiohttpSocket, data: bytes) -> Any:
    """``FastLane.data_received`` -> ``reader.feed_data``, then ``FastSocket.receive``'s ``queue.read()``."""
    eof, _tail = sock.reader.feed_data(data)
    assert not eof
    return done(sock.queue.read())


def today_server_send(sock: AiohttpSocket, text: str) -> bytes:
    """``FastSocket.send_str``."""
    done(sock.writer.send_frame(text.encode("utf-8"), WSMsgType.TEXT))
    return sock.transport.last


def today_server_ping(sock: AiohttpSocket, data: bytes) -> bytes:
    """A client ping read, and ``FastSocket.pong`` (what the emulator does per ping)."""
    msg = today_server_read(sock, data)
    assert msg.type is WSMsgType.PING
    done(sock.writer.send_frame(msg.data, WSMsgType.PONG))
    return sock.transport.last


# ----------------------------------------------------------------------------- server: wsproto


def wsproto_server_handshake() -> tuple[bytes, WSConnection]:
    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(UPGRADE_REQUEST)
    for event in conn.events():
        if isinstance(event, Request):
            path = event.target.partition("?")[0].encode()
            if _WS_PATH.fullmatch(path) is None:
                raise AssertionError(path)
            auth = next(v for k, v in event.extra_headers if k == b"authorization")
            assert auth.startswith(b"jwt ")
            answer = conn.send(
                AcceptConnection(extra_headers=[(b"Date", rfc822_formatted_time().encode()), (b"Server", _SERVER)])
            )
            return answer, conn
    raise AssertionError("no request")


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    side: str
    op: str
    impl: str
    run: Callable[[int], None]
    retained: Callable[[], object] | None = None

    @property
    def family(self) -> str:
        """today / frameprotocol / wsconnection: which rows add up to one connection's framing."""
        if self.impl.startswith("today"):
            return "today"
        return "wsconnection" if "WSConnection" in self.impl else "frameprotocol"


def loop_of(fn: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn()

    return run


def checks() -> None:
    """Every builder's frame parses back; every parser returns the payload; every handshake is accepted."""
    text = CLIENT_TEXT.encode()
    assert unmask(today_build_text()) == (0x1, text)
    assert unmask(bytes(FrameProtocol(client=True, extensions=[]).send_data(CLIENT_TEXT))) == (0x1, text)
    _, conn = wsproto_client_handshake()
    assert unmask(conn.send(TextMessage(data=CLIENT_TEXT))) == (0x1, text)

    fb, cont = today_client_state(replay(S2C_TEXT))
    assert today_read(fb, cont) == (0x1, SERVER_TEXT.encode())
    fp = FrameProtocol(client=True, extensions=[])
    assert fp_read(fp, S2C_TEXT) == (Opcode.TEXT, SERVER_TEXT)
    assert fp_read(fp, S2C_PONG) == (Opcode.PONG, None)
    op, pong = fp_read(fp, S2C_PING)
    assert op is Opcode.PING and unmask(bytes(pong)) == (0xA, b"")
    assert conn_read(conn, S2C_TEXT) == ("text", SERVER_TEXT)
    assert conn_read(conn, S2C_PONG) == ("pong", None)
    kind, pong = conn_read(conn, S2C_PING)
    assert kind == "ping" and unmask(pong) == (0xA, b"")
    fb, cont = today_client_state(replay(S2C_PING))
    op, pong = today_read(fb, cont)
    assert op == 0x9 and unmask(pong) == (0xA, b"")

    request, fb, _ = today_client_handshake(replay(S2C_TEXT))
    assert request == UPGRADE_REQUEST
    request, _ = wsproto_client_handshake()
    assert b"Sec-WebSocket-Key: " + FIXED_KEY in request and b"jwt " + TOKEN in request

    sock = today_server_state()
    msg = today_server_read(sock, C2S_TEXT)
    assert msg.type is WSMsgType.TEXT and msg.data == CLIENT_TEXT
    assert unmask(today_server_send(sock, SERVER_TEXT)) == (0x1, SERVER_TEXT.encode())
    assert unmask(today_server_ping(sock, C2S_PING)) == (0xA, b"")
    fp = FrameProtocol(client=False, extensions=[])
    assert fp_read(fp, C2S_TEXT) == (Opcode.TEXT, CLIENT_TEXT)
    assert unmask(bytes(fp.send_data(SERVER_TEXT))) == (0x1, SERVER_TEXT.encode())
    op, pong = fp_read(fp, C2S_PING)
    assert op is Opcode.PING and unmask(bytes(pong)) == (0xA, b"")

    answer, _ = today_server_handshake()
    assert answer.startswith(b"HTTP/1.1 101 ") and accept_for(FIXED_KEY) in answer
    answer, sconn = wsproto_server_handshake()
    assert answer.startswith(b"HTTP/1.1 101 ") and accept_for(FIXED_KEY) in answer
    assert conn_read(sconn, C2S_TEXT) == ("text", CLIENT_TEXT)
    assert unmask(sconn.send(TextMessage(data=SERVER_TEXT))) == (0x1, SERVER_TEXT.encode())
    # wsproto's client accepts the fast lane's exact answer, and today's client accepts wsproto's.
    client = WSConnection(ConnectionType.CLIENT)
    client.send(Request(host=HOST, target=RESOURCE))
    client.receive_data(answer)
    assert any(isinstance(e, AcceptConnection) for e in client.events())


BUILD_C, PARSE_C, PONG_C, PING_C = (
    "build masked text frame (150 B)",
    "parse server text frame (200 B)",
    "parse server pong",
    "parse server ping + build pong",
)
PARSE_S, BUILD_S, PING_S = (
    "parse masked text frame (150 B)",
    "build unmasked text frame (200 B)",
    "parse masked ping + build pong",
)
UPGRADE = "upgrade handshake + framing state"


def cases() -> list[Case]:
    out: list[Case] = []

    def add(side: str, op: str, impl: str, fn: Callable[[], object], held: Callable[[], object] | None = None) -> None:
        out.append(Case(side, op, impl, loop_of(fn), held))

    # -- client
    fp_c = FrameProtocol(client=True, extensions=[])
    _, conn_c = wsproto_client_handshake()
    msg = TextMessage(data=CLIENT_TEXT)
    add("client", BUILD_C, "today: ABNF.create_frame().format()", today_build_text)
    add("client", BUILD_C, "wsproto FrameProtocol.send_data", lambda: fp_c.send_data(CLIENT_TEXT))
    add("client", BUILD_C, "wsproto WSConnection.send(TextMessage)", lambda: conn_c.send(msg))
    for op, frame in ((PARSE_C, S2C_TEXT), (PONG_C, S2C_PONG), (PING_C, S2C_PING)):
        fb, cont = today_client_state(replay(frame))
        fp = FrameProtocol(client=True, extensions=[])
        _, conn = wsproto_client_handshake()
        add("client", op, "today: frame_buffer.recv_frame", lambda fb=fb, cont=cont: today_read(fb, cont))
        add("client", op, "wsproto FrameProtocol", lambda fp=fp, frame=frame: fp_read(fp, frame))
        add("client", op, "wsproto WSConnection", lambda conn=conn, frame=frame: conn_read(conn, frame))
    recv = replay(S2C_TEXT)

    def today_upgrade_fp() -> FrameProtocol:
        today_client_handshake(recv)
        return FrameProtocol(client=True, extensions=[])

    add("client", UPGRADE, "today: hand-written + frame_buffer", lambda: today_client_handshake(recv))
    add("client", UPGRADE, "hand-written + wsproto FrameProtocol", today_upgrade_fp)
    add("client", UPGRADE, "wsproto WSConnection (h11)", lambda: wsproto_client_handshake()[1])

    # -- server
    sock, sock_w, sock_p = today_server_state(), today_server_state(), today_server_state()
    fp_s, fp_w, fp_p = (FrameProtocol(client=False, extensions=[]) for _ in range(3))
    (_, conn_s), (_, conn_w), (_, conn_p) = (wsproto_server_handshake() for _ in range(3))
    smsg = TextMessage(data=SERVER_TEXT)
    add("server", PARSE_S, "today: aiohttp WebSocketReader (C) + DataQueue", lambda: today_server_read(sock, C2S_TEXT))
    add("server", PARSE_S, "wsproto FrameProtocol", lambda: fp_read(fp_s, C2S_TEXT))
    add("server", PARSE_S, "wsproto WSConnection", lambda: conn_read(conn_s, C2S_TEXT))
    add("server", BUILD_S, "today: aiohttp WebSocketWriter.send_frame", lambda: today_server_send(sock_w, SERVER_TEXT))
    add("server", BUILD_S, "wsproto FrameProtocol.send_data", lambda: fp_w.send_data(SERVER_TEXT))
    add("server", BUILD_S, "wsproto WSConnection.send(TextMessage)", lambda: conn_w.send(smsg))
    add("server", PING_S, "today: aiohttp reader + writer", lambda: today_server_ping(sock_p, C2S_PING))
    add("server", PING_S, "wsproto FrameProtocol", lambda: fp_read(fp_p, C2S_PING))
    add("server", PING_S, "wsproto WSConnection", lambda: conn_read(conn_p, C2S_PING))
    add("server", UPGRADE, "today: fast lane's parse + aiohttp reader/queue/writer", today_server_handshake)
    add("server", UPGRADE, "fast lane's parse + wsproto FrameProtocol", today_server_frame_protocol_handshake)
    add("server", UPGRADE, "wsproto WSConnection (h11)", wsproto_server_handshake)
    # What each connection keeps (the socket, protocol and transport that exist either way not counted).
    held = {
        ("client", "today"): lambda: today_client_handshake(recv)[1:],
        ("client", "frameprotocol"): lambda: FrameProtocol(client=True, extensions=[]),
        ("client", "wsconnection"): lambda: wsproto_client_handshake()[1],
        ("server", "today"): lambda: today_server_objects(SHARED_LANE, SHARED_TRANSPORT),
        ("server", "frameprotocol"): lambda: FrameProtocol(client=False, extensions=[]),
        ("server", "wsconnection"): lambda: wsproto_server_handshake()[1],
    }
    for case in out:
        if case.op == UPGRADE:
            case.retained = held[case.side, case.family]
    return out


def time_once(case: Case, iterations: int) -> float:
    """Microseconds of process CPU per operation, over one batch."""
    gc.collect()
    t0 = time.process_time()
    case.run(iterations)
    return (time.process_time() - t0) / iterations * 1e6


def retained_bytes(make: Callable[[], object], count: int = 1000) -> float:
    """Bytes one connection's framing state keeps allocated (``count`` held at once)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        held: list[object] = []
        for _ in range(count):
            obj = make()
            if isinstance(obj, tuple):  # a connection keeps these in its own slots: no tuple
                held.extend(obj)
            else:
                held.append(obj)
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del held
    return used / count


# One full flow of bench/emulator_capacity.py (connect, RequestConversation, CLOSE, close): each side
# frames 3 messages out (two requests or answers, a close frame) and 3 in; close frames are counted as
# text frames.
FLOW = {
    "client": "1 upgrade + 3 built + 3 parsed",
    "server": "1 upgrade + 3 parsed + 3 built",
}
FLOW_OPS = {
    "client": {UPGRADE: 1, BUILD_C: 3, PARSE_C: 3},
    "server": {UPGRADE: 1, PARSE_S: 3, BUILD_S: 3},
}


def flow_estimate(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Microseconds of framing CPU per flow and side, from the rows' minima."""
    out: dict[str, dict[str, float]] = {}
    for side, ops in FLOW_OPS.items():
        for family in ("today", "frameprotocol", "wsconnection"):
            total = sum(
                r["us_min"] * ops[r["op"]]
                for r in rows
                if r["side"] == side and r["family"] == family and r["op"] in ops
            )
            out.setdefault(side, {})[family] = round(total, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20000, help="operations per timed batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per case (min and median reported)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    checks()
    all_cases = cases()
    for case in all_cases:  # warm-up: caches, first-call costs
        case.run(max(1, args.iterations // 10))
    samples: dict[int, list[float]] = {i: [] for i in range(len(all_cases))}
    for _ in range(args.repeats):
        for i, case in enumerate(all_cases):
            samples[i].append(time_once(case, args.iterations))

    rows = []
    for i, case in enumerate(all_cases):
        row: dict[str, Any] = {
            "family": case.family,
            "side": case.side,
            "op": case.op,
            "impl": case.impl,
            "us_min": round(min(samples[i]), 3),
            "us_median": round(statistics.median(samples[i]), 3),
            "us_samples": [round(s, 3) for s in samples[i]],
        }
        if case.retained is not None:
            row["retained_bytes"] = round(retained_bytes(case.retained))
        rows.append(row)
    for row in rows:  # ratio to today's path for the same operation
        base = next(r for r in rows if r["side"] == row["side"] and r["op"] == row["op"])
        row["x_today_min"] = round(row["us_min"] / base["us_min"], 2)
    per_flow = flow_estimate(rows)

    result = {
        "bench": "framing",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": {
            "aiohttp": aiohttp.__version__,
            "websocket-client": websocket.__version__,
            "wsproto": wsproto.__version__,
        },
        "aiohttp_reader": WebSocketReader.__module__,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "unit": "microseconds of process CPU per operation",
        "rows": rows,
        "per_flow_estimate": per_flow,
    }
    width = max(len(r["op"]) for r in rows)
    iwidth = max(len(r["impl"]) for r in rows)
    for row in rows:
        extra = f"  {row['retained_bytes']:>6} B held" if "retained_bytes" in row else ""
        print(
            f"{row['side']:<6} {row['op']:<{width}}  {row['impl']:<{iwidth}}  "
            f"min {row['us_min']:8.2f} us  median {row['us_median']:8.2f} us  x{row['x_today_min']:<5}{extra}"
        )
    for side, families in per_flow.items():
        print(f"{side} per flow (" + FLOW[side] + "): " + ", ".join(f"{k} {v:.1f} us" for k, v in families.items()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
