"""The fast lane's WebSocket: aiohttp's own frame reader (C) and writer, without ``WebSocketResponse``.

:class:`FastSocket` is the subset of ``aiohttp.web.WebSocketResponse`` the emulator uses
(``receive``, ``send_str``, ``pong``, ``close``, ``closed``), with aiohttp's close semantics,
over an already upgraded connection. It depends on aiohttp internals (3.14:
``WebSocketDataQueue``, ``WebSocketReader``'s signature); :func:`available` says whether they
are there, and the runner falls back to plain aiohttp when they are not, or when
``LP_EMULATOR_FASTLANE=0`` is set. tests/test_private_apis.py checks them.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import (
    WS_CLOSING_MESSAGE,
    WebSocketError,
    WebSocketReader,
    WebSocketWriter,
    WSCloseCode,
    WSMessage,
    WSMsgType,
)

try:  # aiohttp internals this module relies on (checked by available())
    from aiohttp._websocket.reader import WebSocketDataQueue
    from aiohttp.streams import EofStream
except ImportError:  # pragma: no cover - other aiohttp versions
    WebSocketDataQueue = None  # type: ignore[assignment,misc]
    EofStream = None  # type: ignore[assignment,misc]

MAX_MSG_SIZE = 1024 * 1024  # the largest frame a consumer socket takes, on both paths
READ_LIMIT = 2**16  # aiohttp's DEFAULT_CHUNK_SIZE for the frame queue and writer
CLOSE_TIMEOUT_S = 10.0  # WebSocketResponse's default close timeout
FASTLANE_ENV = "LP_EMULATOR_FASTLANE"


def available() -> bool:
    """True when the fast lane can run on this aiohttp (and it was not turned off)."""
    if os.environ.get(FASTLANE_ENV, "1") == "0" or WebSocketDataQueue is None:
        return False
    try:
        loop = asyncio.new_event_loop()
        try:
            queue = WebSocketDataQueue(BaseProtocol(loop), READ_LIMIT, loop=loop)
            WebSocketReader(queue, MAX_MSG_SIZE, compress=False, decode_text=True)
        finally:
            loop.close()
    except Exception:  # noqa: BLE001 - any mismatch means: use plain aiohttp
        return False
    return True


class FastSocket:
    """The part of ``aiohttp.web.WebSocketResponse`` the emulator uses, over aiohttp's reader/writer."""

    __slots__ = ("lane", "transport", "queue", "reader", "writer", "_closed", "_closing", "_waiting", "_close_wait")

    def __init__(self, lane: BaseProtocol, transport: asyncio.Transport) -> None:
        self.lane = lane  # the connection's protocol: flow control for the queue and the writer
        self.transport = transport
        self.queue = WebSocketDataQueue(lane, READ_LIMIT, loop=lane._loop)
        self.reader = WebSocketReader(self.queue, MAX_MSG_SIZE, compress=False, decode_text=True)
        self.writer = WebSocketWriter(lane, transport, limit=READ_LIMIT, compress=0)
        self._closed = False
        self._closing = False
        self._waiting = False
        self._close_wait: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_str(self, data: str) -> None:
        await self.writer.send_frame(data.encode("utf-8"), WSMsgType.TEXT)

    async def pong(self, message: bytes = b"") -> None:
        await self.writer.send_frame(message, WSMsgType.PONG)

    async def receive(self) -> WSMessage:
        """As ``WebSocketResponse.receive`` with ``autoping=False, autoclose=True`` and no timeout."""
        while True:
            if self._closed:
                return WSMessage(WSMsgType.CLOSED, None, None)
            if self._closing:
                return WS_CLOSING_MESSAGE
            try:
                self._waiting = True
                try:
                    msg = await self.queue.read()
                finally:
                    self._waiting = False
                    if self._close_wait is not None and not self._close_wait.done():
                        self._close_wait.set_result(None)
            except EofStream:
                await self.close()
                return WSMessage(WSMsgType.CLOSED, None, None)
            except WebSocketError as exc:
                await self.close(code=exc.code)
                return WSMessage(WSMsgType.ERROR, exc, None)
            except Exception as exc:  # noqa: BLE001 - as aiohttp: an ERROR message
                self._closing = True
                await self.close()
                return WSMessage(WSMsgType.ERROR, exc, None)
            mtype = msg.type
            if mtype is WSMsgType.CLOSE:
                self._closing = True
                if not self._closed:
                    await self.close(drain=False)
            elif mtype is WSMsgType.CLOSING:
                self._closing = True
            return msg

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        """As ``WebSocketResponse.close``: send a close frame, then wait for the client's (10 s)."""
        if self._closed:
            return False
        self._closed = True
        transport = self.transport
        try:
            await self.writer.close(code, message)
            if drain:
                await self.lane._drain_helper()
        except (asyncio.CancelledError, asyncio.TimeoutError):
            transport.close()
            raise
        except Exception:  # noqa: BLE001
            transport.close()
            return True
        if self._waiting:
            self._close_wait = self.lane._loop.create_future()
            self.queue.feed_data(WS_CLOSING_MESSAGE, 0)
            await self._close_wait
        if self._closing:
            transport.close()
            return True
        try:
            await asyncio.wait_for(self._await_close_frame(), CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            transport.close()
            raise
        except Exception:  # noqa: BLE001 - timeout, EOF: the connection is closed either way
            transport.close()
        return True

    async def _await_close_frame(self) -> None:
        while True:
            msg = await self.queue.read()
            if msg.type is WSMsgType.CLOSE:
                self.transport.close()
                return
