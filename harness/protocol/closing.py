"""How a consumer socket ends: close codes, their reasons, the close frame's payload, and expiry.

RFC 6455 5.5 caps a control frame's payload at 125 bytes: two for the code, so at most 123 for
the reason, cut on a UTF-8 character boundary (a reason cut inside a character is invalid
UTF-8, and a strict peer fails the connection for it). LivePerson adds 4401 and 4407
(lp-protocol.md 3.5); which of the two an expired token gets depends on whether it stood for an
unauthenticated identity, and that rule lives here for the emulator that sends the code and the
client that acts on it.
"""

from __future__ import annotations

import struct
from enum import Enum, IntEnum
from typing import Any, Final

MAX_REASON_BYTES: Final = 123
ANONYMOUS_FLAG: Final = "lp_anon"  # marker inside an LP token's "lp.ext": an unauthenticated identity


class CloseCode(IntEnum):
    """WebSocket close codes: RFC 6455 plus LivePerson's two (lp-protocol.md 3.5)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005  # never sent on the wire: a close frame with no code
    ABNORMAL = 1006  # never sent on the wire: no close frame was received
    POLICY_VIOLATION = 1008
    INTERNAL_ERROR = 1011
    TOKEN_EXPIRED = 4401  # a fresh token is needed
    IDENTITY_EXPIRED = 4407  # unauthenticated identity must be extended at the IDP


_CLOSE_REASONS: Final = {
    CloseCode.NORMAL: "normal closure",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.NO_STATUS: "closed with no status code",
    CloseCode.ABNORMAL: "connection dropped without a close frame",
    CloseCode.POLICY_VIOLATION: "idle timeout",
    CloseCode.INTERNAL_ERROR: "server error",
    CloseCode.TOKEN_EXPIRED: "token expired: get a new token from the IDP and reconnect",
    CloseCode.IDENTITY_EXPIRED: "unauthenticated identity expired: extend it at the IDP",
}


def close_reason(code: int) -> str:
    """A short human reason for a close code (used in close frames and failure messages)."""
    try:
        return _CLOSE_REASONS[CloseCode(code)]
    except ValueError:
        return "other close code: wait briefly and reconnect"


def truncate_utf8(text: str, max_bytes: int = MAX_REASON_BYTES) -> bytes:
    """``text`` as UTF-8 in at most ``max_bytes``, never cut inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return data
    return data[:max_bytes].decode("utf-8", "ignore").encode("utf-8")


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason within RFC 6455's 123 bytes."""
    return struct.pack("!H", code) + truncate_utf8(reason)


def echo_payload(code: int) -> bytes:
    """The payload of the close frame that answers a server's close: its code, or nothing when it
    sent none (1005 must never appear on the wire, RFC 6455 7.4.1)."""
    return b"" if code in (CloseCode.NO_STATUS, CloseCode.ABNORMAL) else close_payload(code)


def parse_close_payload(data: bytes) -> tuple[int, str]:
    """(code, reason) of a received close frame; an empty payload is 1005 (RFC 6455 7.1.5)."""
    if len(data) < 2:
        return CloseCode.NO_STATUS, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode("utf-8", "replace")


def expiry_close_code(anonymous: bool) -> int:
    """The close code for a socket whose LP token expired: 4407 asks to extend an unauthenticated
    identity at the IDP, 4401 asks for a fresh token (lp-protocol.md 3.5)."""
    return CloseCode.IDENTITY_EXPIRED if anonymous else CloseCode.TOKEN_EXPIRED


def is_anonymous(lp_claims: dict[str, Any]) -> bool:
    """Whether an LP token's claims stand for an unauthenticated (anonymous) identity."""
    ext = lp_claims.get("lp.ext")
    return isinstance(ext, dict) and ext.get(ANONYMOUS_FLAG) is True


def mark_anonymous(lp_claims: dict[str, Any]) -> dict[str, Any]:
    """Mark an LP token's claims as standing for an unauthenticated identity (the IDP's side)."""
    lp_claims.setdefault("lp.ext", {})[ANONYMOUS_FLAG] = True
    return lp_claims


def rejection_close_code(expired: bool, unverified_claims: dict[str, Any] | None) -> int:
    """The close code for a socket token refused after the upgrade was accepted.

    An expired token that stood for an unauthenticated identity gets 4407 (extend it at the
    IDP); anything else, 4401 (get a new token).
    """
    if expired and unverified_claims is not None:
        return expiry_close_code(is_anonymous(unverified_claims))
    return CloseCode.TOKEN_EXPIRED


class Recovery(Enum):
    """What a client does before it reconnects after the server closed or the connection dropped."""

    REAUTHENTICATE = "reauthenticate"  # 4401: a fresh LP token from the IDP (authenticate again)
    EXTEND_IDENTITY = "extend identity"  # 4407: extend the unauthenticated identity, then authenticate
    RECONNECT = "reconnect"  # any other code, or no close frame: wait briefly, reconnect as before


def recovery_for(code: int | None) -> Recovery:
    """LivePerson's rule for a socket that ended (lp-protocol.md 3.5): the close code says what to renew."""
    if code == CloseCode.TOKEN_EXPIRED:
        return Recovery.REAUTHENTICATE
    if code == CloseCode.IDENTITY_EXPIRED:
        return Recovery.EXTEND_IDENTITY
    return Recovery.RECONNECT
