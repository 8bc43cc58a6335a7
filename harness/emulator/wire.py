"""The few things every HTTP answer of the emulator is written with: compact JSON and abrupt resets.

The aiohttp handlers and the fast lane write the same JSON (:func:`dumps`), so an answer is
byte for byte the same whichever path served it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import Any

from aiohttp import web

from harness.emulator.faults import FaultSpec
from harness.protocol import idp as contract

JSON_HEADERS = {"Content-Type": "application/json"}
dumps = json.JSONEncoder(separators=(",", ":")).encode
_LINGER_RESET = struct.pack("ii", 1, 0)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(body).encode(), status=status, headers=headers or JSON_HEADERS)


def error_response(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    merged = dict(JSON_HEADERS)
    if headers:
        merged.update(headers)
    return json_response(contract.error_body(status, error, message), status, merged)


def reset_transport(transport: asyncio.BaseTransport | None) -> None:
    """Abort with SO_LINGER 0, so the peer sees a TCP RST rather than an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()  # type: ignore[attr-defined]


def retry_after(fault: FaultSpec) -> dict[str, str] | None:
    """The Retry-After header of an injected status (429 gets 1 s unless told otherwise)."""
    seconds = fault.get("retry_after")
    if seconds is None and fault.get("status") == 429:
        seconds = 1
    return None if seconds is None else {"Retry-After": str(max(0, round(seconds)))}


def throttled_response(wait: int) -> web.Response:
    """The per-account rate limit's refusal (``--rate-limit``): 429, and when to try again."""
    return error_response(429, "too_many_requests", f"too many requests: retry after {wait} s", {"Retry-After": str(wait)})
