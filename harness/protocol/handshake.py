"""The consumer socket's HTTP upgrade: the Authorization header and the WebSocket keys, both ways.

The client builds the upgrade request and checks the 101 answer; the emulator parses the same
``Authorization: jwt <token>`` header and computes the same ``Sec-WebSocket-Accept``. Header
names and the ``jwt`` scheme come from infra/consumerAuthenticationHeader.json and the tutorial.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from harness.protocol.envelope import ProtocolError

AUTH_SCHEME: Final = "jwt"
WS_VERSION: Final = "13"
WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
MAX_RESPONSE_HEAD: Final = 16384


class HandshakeError(ProtocolError):
    """An upgrade exchange that is not the one RFC 6455 and the consumer API describe."""


def authorization(token: str) -> str:
    """The value of the socket's ``Authorization`` header for an LP token."""
    return f"{AUTH_SCHEME} {token}"


def token_of_authorization(value: str) -> str:
    """The LP token in an ``Authorization`` header value; HandshakeError if it is not ``jwt <token>``."""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != AUTH_SCHEME or not token:
        raise HandshakeError("bad authorization", f"Authorization must be '{AUTH_SCHEME} <token>'")
    return token


def client_key(nonce: bytes) -> bytes:
    """``Sec-WebSocket-Key`` from 16 random bytes the caller drew (base64)."""
    if len(nonce) != 16:
        raise ValueError("the key nonce is 16 bytes")
    return base64.b64encode(nonce)


def valid_client_key(key: bytes) -> bool:
    """Whether a request's ``Sec-WebSocket-Key`` is the base64 of 16 bytes, as RFC 6455 4.1 asks."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def accept_key(key: bytes | str) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    raw = key.encode("latin-1") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw + WS_GUID).digest())


def upgrade_request(resource: str, host: str, key: bytes, token: str | None, extra: Iterable[str] = ()) -> bytes:
    """The client's upgrade request; ``token`` None leaves the header out (InitConnection flow)."""
    lines = [
        f"GET {resource} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode('ascii')}",
        f"Sec-WebSocket-Version: {WS_VERSION}",
    ]
    if token is not None:
        lines.append(f"Authorization: {authorization(token)}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True, slots=True)
class UpgradeAnswer:
    """The server's answer to the upgrade: its status, and whether it accepted our key."""

    status: int
    accepted: bool
    headers: dict[str, str]


def parse_upgrade_answer(head: bytes, key: bytes) -> UpgradeAnswer:
    """The status line and headers of an upgrade answer (``head``: up to, not including, the blank line).

    ``accepted`` is true only for a 101 whose ``Sec-WebSocket-Accept`` matches ``key``.
    HandshakeError for a status line that cannot be read.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise HandshakeError("bad status line", repr(lines[0][:60])) from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    accepted = status == 101 and headers.get("sec-websocket-accept", "").encode("latin-1") == accept_key(key)
    return UpgradeAnswer(status, accepted, headers)
