"""The client's frame reading over websocket-client: whole messages out, fragments joined, controls between."""

from __future__ import annotations

import pytest
from websocket import ABNF

from harness.client import framing


def _server_frame(data: bytes, opcode: int, fin: int = 1) -> bytes:
    """A frame as a server sends it (unmasked)."""
    return ABNF(fin, 0, 0, 0, opcode, 0, data).format()


def _reader(wire: bytes, leftover: bytes = b"") -> framing.frame_buffer:
    chunks = [wire[i : i + 3] for i in range(0, len(wire), 3)]  # frames split across recv calls

    def recv(_size: int) -> bytes:
        if not chunks:
            raise EOFError
        return chunks.pop(0)

    return framing.reader(recv, leftover)


def test_messages_and_control_frames_in_order() -> None:
    first = _server_frame(b'{"kind":"resp"}', framing.OP_TEXT)
    wire = (
        _server_frame(b"part one, ", framing.OP_TEXT, fin=0)
        + _server_frame(b"", framing.OP_PING)  # a control frame may come between fragments
        + _server_frame(b"part two", framing.OP_CONT)
        + _server_frame(b"\x03\xe8bye", framing.OP_CLOSE)
    )
    fb = _reader(wire, leftover=first)
    cont = framing.message_assembler()
    got = [framing.read_message(fb, cont) for _ in range(4)]
    assert got == [
        (framing.OP_TEXT, b'{"kind":"resp"}'),
        (framing.OP_PING, b""),
        (framing.OP_TEXT, b"part one, part two"),
        (framing.OP_CLOSE, b"\x03\xe8bye"),
    ]
    with pytest.raises(EOFError):
        framing.read_message(fb, cont)


def test_a_continuation_with_no_start_is_a_frame_error() -> None:
    fb = _reader(_server_frame(b"orphan", framing.OP_CONT))
    with pytest.raises(framing.FrameError):
        framing.read_message(fb, framing.message_assembler())


def test_the_ping_constant_is_an_empty_masked_ping() -> None:
    assert framing.PING_FRAME[0] == 0x80 | framing.OP_PING
    assert framing.PING_FRAME[1] == 0x80  # masked, length 0
    assert len(framing.PING_FRAME) == 6
    assert framing.frame(b"", framing.OP_PING)[:2] == framing.PING_FRAME[:2]
