"""The private library APIs the harness relies on are still there and still behave as it expects.

Why: the client frames with websocket-client's ``frame_buffer``/``continuous_frame`` and the
emulator's fast lane reads with aiohttp's ``WebSocketDataQueue``/``WebSocketReader`` because the
public alternative (wsproto) costs 1.2-8x the CPU per frame (bench/results/framing.md). Private
APIs move without notice, so the versions are pinned in pyproject.toml and this file fails, with
the file to fix, the day a new version moves one. The fast lane would otherwise fall back to plain
aiohttp *silently* (about half the flows per second), and the client would fail at import time.

To move a pin: install the new version, run this file and ``bench/framing.py``, then widen the
bound in pyproject.toml.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import socket
import ssl
import struct
from collections.abc import Coroutine
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from harness.client import framing

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "harness"
WATCHED = {
    "websocket": "websocket-client",
    "aiohttp": "aiohttp",
    "geventhttpclient": "geventhttpclient",
    "gevent": "gevent",
}
# Private imports with a behaviour check below; a new one must get a check (and a pin) here.
KNOWN_PRIVATE_IMPORTS = {
    ("aiohttp._websocket.reader", "WebSocketDataQueue"),
}
PINNED = {"aiohttp", "websocket-client"}  # upper bounds in pyproject.toml, because of what is checked here
FASTLANE_ESCAPE = " (or set LP_EMULATOR_FASTLANE=0 to serve everything through plain aiohttp)"


@lru_cache(maxsize=1)
def _sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(HARNESS.rglob("*.py"))}


def users(marker: str) -> list[str]:
    """The harness files that mention ``marker`` (the files move; the names they use do not)."""
    found = [path for path, text in _sources().items() if marker in text]
    if not found:
        pytest.skip(f"no file in harness/ uses {marker} any more: drop its check here and its pin in pyproject.toml")
    return found


def pin_note(dist: str) -> str:
    if dist in PINNED:
        return "pinned in pyproject.toml"
    return "no upper bound in pyproject.toml: add one there, or change the code"


def moved(dist: str, what: str, marker: str, escape: str = "") -> str:
    """The failure message: which version moved what, and which files need updating."""
    return f"{dist} {version(dist)} moved {what}; {', '.join(users(marker))} needs updating{escape} -- {pin_note(dist)}"


def done(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that must finish without waiting (its data is already buffered)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine waited: its data should have been buffered")


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame built by hand (short payloads only)."""
    assert len(payload) < 126
    first = (0x80 if fin else 0) | opcode
    if mask is None:
        return bytes((first, len(payload))) + payload
    return bytes((first, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def unmask(data: bytes) -> tuple[int, int, bytes]:
    """(first byte, mask bit, payload) of one short frame."""
    n = data[1] & 0x7F
    assert n < 126
    if data[1] & 0x80:
        key = data[2:6]
        return data[0], 1, bytes(b ^ key[i % 4] for i, b in enumerate(data[6 : 6 + n]))
    return data[0], 0, data[2 : 2 + n]


# ----------------------------------------------------------------------------- every private import


def _private_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of each ``from <watched lib>.<_private> import name`` in harness/."""
    found = []
    for path, text in _sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] in WATCHED and any(p.startswith("_") for p in parts[1:]):
                    found += [(path, node.lineno, node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] in WATCHED and any(p.startswith("_") for p in parts[1:]):
                        found.append((path, node.lineno, alias.name, ""))
    return found


def test_every_private_import_resolves_and_is_checked() -> None:
    imports = _private_imports()
    assert imports, "no private imports found in harness/: is the scan still looking at the right files?"
    for path, line, module, name in imports:
        dist = WATCHED[module.split(".")[0]]
        where = f"{module}.{name}" if name else module
        assert (module, name) in KNOWN_PRIVATE_IMPORTS, (
            f"{path}:{line} imports the private {where}: add a behaviour check to tests/test_private_apis.py "
            f"and an upper bound for {dist} in pyproject.toml"
        )
        try:
            mod = importlib.import_module(module)
        except ImportError:
            pytest.fail(f"{dist} {version(dist)} moved {module}; {path}:{line} needs updating -- {pin_note(dist)}")
        assert not name or hasattr(mod, name), (
            f"{dist} {version(dist)} moved {where}; {path}:{line} needs updating -- {pin_note(dist)}"
        )


# ----------------------------------------------------------------------------- websocket-client


def test_websocket_client_frame_buffer() -> None:
    """The reader's ``frame_buffer(recv, skip_utf8_validation)``, its ``recv_buffer``, ``lock`` and ``recv``."""
    try:  # public name; its recv_buffer and lock attributes, used by the client, are not
        from websocket import frame_buffer
    except ImportError:
        pytest.fail(moved("websocket-client", "frame_buffer", "frame_buffer"))
    calls: list[int] = []
    data = [frame(0x1, b'{"kind":"resp"}') + frame(0xA, b"")]

    def recv(bufsize: int) -> bytes:
        calls.append(bufsize)
        if not data:
            raise EOFError
        return data.pop()

    try:
        fb = frame_buffer(recv, True)
    except TypeError as exc:
        pytest.fail(moved("websocket-client", f"frame_buffer's signature ({exc})", "frame_buffer"))
    msg = moved("websocket-client", "frame_buffer.recv_buffer", "recv_buffer")
    assert isinstance(getattr(fb, "recv_buffer", None), list), msg

    entered: list[bool] = []

    class Lock:
        def __enter__(self) -> None:
            entered.append(True)

        def __exit__(self, *exc: object) -> None:
            return None

    assert hasattr(fb, "lock"), moved("websocket-client", "frame_buffer.lock", "fb.lock")
    fb.lock = Lock()
    fb.recv_buffer.append(frame(0x8, struct.pack("!H", 1000)))  # the bytes read past the upgrade: first
    first = fb.recv_frame()
    assert calls == [], msg + " (bytes put in recv_buffer were not read first)"
    assert (first.opcode, first.fin, first.data) == (0x8, 1, struct.pack("!H", 1000)), msg
    text = fb.recv_frame()
    assert (text.opcode, text.fin, text.data) == (0x1, 1, b'{"kind":"resp"}'), moved(
        "websocket-client", "frame_buffer.recv_frame (text frames as bytes, unvalidated)", "frame_buffer"
    )
    assert fb.recv_frame().opcode == 0xA
    assert entered, moved("websocket-client", "frame_buffer.lock (recv_frame no longer takes it)", "fb.lock")
    data.append(frame(0x1, b"{}"))
    framing.detach(fb)  # replaces fb.recv: the reader must read through the attribute
    with pytest.raises(ConnectionAbortedError):
        fb.recv_frame()
    assert data, moved("websocket-client", "frame_buffer.recv (the reader no longer calls the attribute)", "fb.recv")


def test_websocket_client_continuous_frame() -> None:
    """The reader's fragment assembly: ``recving_frames``, ``validate``, ``add``, ``is_fire``, ``extract``."""
    try:
        from websocket import ABNF, WebSocketException, continuous_frame
    except ImportError:
        pytest.fail(moved("websocket-client", "continuous_frame", "continuous_frame"))
    msg = moved("websocket-client", "continuous_frame's behaviour", "continuous_frame")
    cont = continuous_frame(False, True)
    assert not cont.recving_frames, msg
    head = ABNF(0, 0, 0, 0, ABNF.OPCODE_TEXT, 0, b'{"kind":')
    tail = ABNF(1, 0, 0, 0, ABNF.OPCODE_CONT, 0, b'"resp"}')
    cont.validate(head)
    cont.add(head)
    assert cont.recving_frames and not cont.is_fire(head), msg
    cont.validate(tail)
    cont.add(tail)
    assert not cont.recving_frames and cont.is_fire(tail), msg
    opcode, whole = cont.extract(tail)
    assert (opcode, whole.data) == (ABNF.OPCODE_TEXT, b'{"kind":"resp"}'), msg
    with pytest.raises(WebSocketException):  # a stray continuation: the reader ends the socket
        cont.validate(ABNF(1, 0, 0, 0, ABNF.OPCODE_CONT, 0, b"x"))


def test_websocket_client_builds_masked_frames() -> None:
    """``ABNF.create_frame(payload, opcode).format()`` and the opcodes the reader dispatches on."""
    from websocket import ABNF

    msg = moved("websocket-client", "ABNF.create_frame/format", "ABNF.create_frame")
    assert (ABNF.OPCODE_CONT, ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY) == (0x0, 0x1, 0x2), msg
    assert (ABNF.OPCODE_CLOSE, ABNF.OPCODE_PING, ABNF.OPCODE_PONG) == (0x8, 0x9, 0xA), msg
    assert unmask(ABNF.create_frame('{"kind":"req"}', ABNF.OPCODE_TEXT).format()) == (0x81, 1, b'{"kind":"req"}'), msg
    assert unmask(ABNF.create_frame(b"\x03\xe8", ABNF.OPCODE_CLOSE).format()) == (0x88, 1, b"\x03\xe8"), msg


# ----------------------------------------------------------------------------- aiohttp (the fast lane)


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _fast_socket_parts(loop: asyncio.AbstractEventLoop) -> tuple[Any, Any, Any, list[bytes]]:
    """What ``FastSocket.__init__`` builds: a queue, a reader into it and a writer to a transport."""
    try:
        from aiohttp._websocket.reader import WebSocketDataQueue
    except ImportError:
        pytest.fail(
            moved("aiohttp", "aiohttp._websocket.reader.WebSocketDataQueue", "WebSocketDataQueue", FASTLANE_ESCAPE)
        )
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.http import WebSocketReader, WebSocketWriter

    written: list[bytes] = []

    class Transport:
        def write(self, data: bytes) -> None:
            written.append(bytes(data))

        def is_closing(self) -> bool:
            return False

    lane = BaseProtocol(loop)
    try:
        queue = WebSocketDataQueue(lane, 2**16, loop=loop)
        reader = WebSocketReader(queue, 1024 * 1024, compress=False, decode_text=True)
        writer = WebSocketWriter(lane, Transport(), limit=2**16, compress=0)  # type: ignore[arg-type]
    except TypeError as exc:
        pytest.fail(
            moved(
                "aiohttp",
                f"the WebSocket reader/queue/writer signatures ({exc})",
                "WebSocketDataQueue",
                FASTLANE_ESCAPE,
            )
        )
    return queue, reader, writer, written


def test_aiohttp_reader_and_queue(loop: asyncio.AbstractEventLoop) -> None:
    """``reader.feed_data`` -> ``(eof, tail)``; ``queue.read()`` -> the messages ``FastSocket.receive`` expects."""
    from aiohttp.http import WS_CLOSING_MESSAGE, WebSocketError, WSCloseCode, WSMsgType
    from aiohttp.streams import EofStream

    queue, reader, _, _ = _fast_socket_parts(loop)
    msg = moved("aiohttp", "WebSocketReader/WebSocketDataQueue behaviour", "WebSocketDataQueue", FASTLANE_ESCAPE)
    key = b"\x01\x02\x03\x04"
    result = reader.feed_data(frame(0x1, b'{"kind":"req"}', mask=key) + frame(0x9, b"", mask=key))
    assert isinstance(result, tuple) and len(result) == 2 and result[0] is False, msg + f" (feed_data gave {result!r})"
    text = done(queue.read())
    assert (text.type, text.data) == (WSMsgType.TEXT, '{"kind":"req"}'), msg
    ping = done(queue.read())
    assert (ping.type, ping.data) == (WSMsgType.PING, b""), msg
    reader.feed_data(frame(0x8, struct.pack("!H", 1000) + b"bye", mask=key))
    close = done(queue.read())
    assert (close.type, close.data, close.extra) == (WSMsgType.CLOSE, 1000, "bye"), msg
    queue.feed_data(WS_CLOSING_MESSAGE, 0)  # FastSocket.close wakes a waiting receive() this way
    assert done(queue.read()) is WS_CLOSING_MESSAGE and WS_CLOSING_MESSAGE.type is WSMsgType.CLOSING, msg
    reader.feed_eof()
    with pytest.raises(EofStream):
        done(queue.read())

    queue, reader, _, _ = _fast_socket_parts(loop)
    eof, _ = reader.feed_data(frame(0x3, b"", mask=key))  # a reserved opcode: a protocol error
    assert eof is True, msg
    with pytest.raises(WebSocketError) as err:
        done(queue.read())
    assert err.value.code == WSCloseCode.PROTOCOL_ERROR, msg


def test_aiohttp_writer(loop: asyncio.AbstractEventLoop) -> None:
    """``writer.send_frame(bytes, opcode)`` and ``writer.close(code, message)``: unmasked frames to the transport."""
    from aiohttp.http import WSMsgType

    _, _, writer, written = _fast_socket_parts(loop)
    msg = moved("aiohttp", "WebSocketWriter behaviour", "WebSocketWriter", FASTLANE_ESCAPE)
    done(writer.send_frame(b'{"kind":"resp"}', WSMsgType.TEXT))
    done(writer.send_frame(b"", WSMsgType.PONG))
    done(writer.close(4401, b"expired"))
    got = [unmask(w) for w in written]
    assert got == [(0x81, 0, b'{"kind":"resp"}'), (0x8A, 0, b""), (0x88, 0, struct.pack("!H", 4401) + b"expired")], msg


def test_aiohttp_base_protocol(loop: asyncio.AbstractEventLoop) -> None:
    """``FastLane`` subclasses ``BaseProtocol`` with ``__slots__`` and uses ``_loop``, ``_upgraded``, ``_drain_helper``."""
    from aiohttp.base_protocol import BaseProtocol

    class Lane(BaseProtocol):
        __slots__ = ("buf",)

    lane = Lane(loop)
    for name in ("_loop", "_upgraded"):
        assert hasattr(lane, name), moved("aiohttp", f"BaseProtocol.{name}", "BaseProtocol", FASTLANE_ESCAPE)
    assert lane._loop is loop
    lane._upgraded = True  # FastLane sets it; with __slots__ this raises if the slot went away
    assert inspect.iscoroutinefunction(getattr(BaseProtocol, "_drain_helper", None)), moved(
        "aiohttp", "BaseProtocol._drain_helper", "_drain_helper", FASTLANE_ESCAPE
    )
    lane.transport = object()  # type: ignore[assignment]
    done(lane._drain_helper())  # connected, not paused: returns at once


def test_aiohttp_other_names() -> None:
    """The rest of what the fast lane imports, with the values its answers depend on."""
    try:
        from aiohttp.helpers import rfc822_formatted_time
        from aiohttp.http import SERVER_SOFTWARE, WS_KEY, WSMessage  # noqa: F401
        from aiohttp.tcp_helpers import tcp_keepalive  # noqa: F401
    except ImportError as exc:
        pytest.fail(moved("aiohttp", f"a name the fast lane imports ({exc})", "rfc822_formatted_time", FASTLANE_ESCAPE))
    assert WS_KEY == b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert isinstance(SERVER_SOFTWARE, str) and SERVER_SOFTWARE.startswith("Python/")
    assert rfc822_formatted_time().endswith(" GMT")


def test_aiohttp_sock_site_internals(loop: asyncio.AbstractEventLoop) -> None:
    """``FastLaneSite`` replaces ``SockSite.start`` and reads ``_runner``, ``_sock``, ``_backlog``; sets ``_server``."""
    from aiohttp import web

    users("_runner.server")
    runner = web.AppRunner(web.Application())
    loop.run_until_complete(runner.setup())
    try:
        with socket.socket() as sock:
            site = web.SockSite(runner, sock, backlog=17)
            for name in ("_runner", "_sock", "_backlog", "_server"):
                assert hasattr(site, name), moved("aiohttp", f"SockSite.{name}", "_runner.server", FASTLANE_ESCAPE)
            assert site._runner is runner and site._sock is sock and site._backlog == 17
            assert callable(runner.server)  # the protocol factory the fast lane hands connections to
    finally:
        loop.run_until_complete(runner.cleanup())


def test_fast_lane_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loud where the runner would be silent: without the fast lane the emulator serves about half the flows/s."""
    module = users("def available()")[0][: -len(".py")].replace("/", ".")
    monkeypatch.delenv("LP_EMULATOR_FASTLANE", raising=False)
    fastlane = importlib.import_module(module)
    assert fastlane.available(), moved(
        "aiohttp", "the internals the fast lane needs", "def available()", FASTLANE_ESCAPE
    )


# ----------------------------------------------------------------------------- geventhttpclient, gevent


def test_geventhttpclient_is_socket_alive() -> None:
    """keepalive.py replaces ``ConnectionPool._is_socket_alive(self, sock)``; the pool must still call it."""
    from geventhttpclient.connectionpool import ConnectionPool

    msg = moved("geventhttpclient", "ConnectionPool._is_socket_alive", "_is_socket_alive")
    method = getattr(ConnectionPool, "_is_socket_alive", None)
    assert callable(method), msg
    assert list(inspect.signature(method).parameters) == ["self", "sock"], msg
    assert "self._is_socket_alive(" in inspect.getsource(ConnectionPool), msg + " (the pool no longer calls it)"


def test_gevent_ssl_socket_context() -> None:
    """``gevent.ssl.SSLSocket(sock=..., server_hostname=..., _context=ctx)`` wraps with a stdlib context."""
    from gevent import ssl as gssl

    msg = moved("gevent", "gevent.ssl.SSLSocket's _context parameter", "SSLSocket(")
    assert "_context" in inspect.signature(gssl.SSLSocket.__init__).parameters, msg
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with socket.socket() as raw:  # not connected: no handshake, only the wrapper is built
        wrapped = gssl.SSLSocket(sock=raw, server_hostname="example.test", _context=ctx)
        try:
            assert wrapped.context is ctx, msg
        finally:
            wrapped.close()
