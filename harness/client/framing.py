"""WebSocket framing for the client socket, from websocket-client.

``ABNF`` builds masked frames; ``frame_buffer`` and ``continuous_frame`` read them (exported by
websocket-client, but the reader's ``recv_buffer`` and ``lock`` attributes used here are its
internals: pyproject.toml bounds the version and tests/test_private_apis.py checks them). Every use of websocket-client's
framing is here, so a change of frame library, or of websocket-client's internals, is a change
of this module only (the client's other use of the package is its public exception classes, in
:mod:`harness.client.errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from websocket import ABNF, WebSocketException, continuous_frame, frame_buffer

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "PING_FRAME",
    "FrameError",
    "frame",
    "detach",
    "message_assembler",
    "read_message",
    "reader",
]

OP_TEXT: Final = ABNF.OPCODE_TEXT
OP_BINARY: Final = ABNF.OPCODE_BINARY
OP_CONT: Final = ABNF.OPCODE_CONT
OP_CLOSE: Final = ABNF.OPCODE_CLOSE
OP_PING: Final = ABNF.OPCODE_PING
OP_PONG: Final = ABNF.OPCODE_PONG
FrameError: Final = WebSocketException  # what a frame that breaks RFC 6455 raises while reading

# An empty, masked ping: the mask key of an empty payload masks nothing, so one constant serves all.
PING_FRAME: Final = bytes((0x80 | OP_PING, 0x80)) + b"\x00\x00\x00\x00"


class _NoLock:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK: Final = _NoLock()


def reader(recv: Callable[[int], bytes], leftover: bytes = b"") -> frame_buffer:
    """A frame reader over ``recv`` for one reading greenlet; ``leftover``: bytes read past the upgrade."""
    fb = frame_buffer(recv, True)  # text is validated by json.loads, not twice
    fb.lock = _NO_LOCK  # only the reader reads
    if leftover:
        fb.recv_buffer.append(leftover)
    return fb


def detach(fb: frame_buffer) -> None:
    """Let a finished reader go: its ``recv`` is its socket's bound method, a reference cycle.

    Cycles outlive their socket until a full collection, which then walks every session's objects
    in one pause; without it a finished session is freed at once, by reference counting.
    """
    fb.recv = _closed


def _closed(_bufsize: int) -> bytes:
    raise ConnectionAbortedError("the socket is closed")


def message_assembler() -> continuous_frame:
    """Joins a fragmented message's frames (text or binary, UTF-8 left to the JSON parser)."""
    return continuous_frame(False, True)


def frame(payload: bytes | str, opcode: int) -> bytes:
    """One masked frame, ready to write."""
    return ABNF.create_frame(payload, opcode).format()


def read_message(fb: frame_buffer, cont: continuous_frame) -> tuple[int, bytes]:
    """The next whole message or control frame: (opcode, payload); a fragmented message is joined.

    Raises what ``fb``'s ``recv`` raises, and :data:`FrameError` (or ValueError) for a frame
    that breaks RFC 6455.
    """
    while True:
        received = fb.recv_frame()
        op = received.opcode
        if op == OP_TEXT and received.fin and not cont.recving_frames:
            return op, received.data
        if op not in (OP_TEXT, OP_BINARY, OP_CONT):  # a control frame
            return op, received.data
        cont.validate(received)
        cont.add(received)
        if cont.is_fire(received):
            opcode, whole = cont.extract(received)
            return opcode, whole.data
