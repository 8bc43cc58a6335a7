"""The JSON envelope every consumer-socket frame travels in (lp-protocol.md 3.2).

``parse`` turns one text frame into a :class:`Request`, :class:`Response` or
:class:`Notification`, and raises :class:`ProtocolError` -- and nothing else -- for any
input that is not a well-formed envelope. The ``encode_*`` functions build frames.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

MAX_ID_LENGTH: Final = 64
KINDS: Final = ("req", "resp", "notification")


class ProtocolError(ValueError):
    """A frame that is not a valid envelope; ``reason`` is short and fit for a failure category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Request:
    """``{"kind":"req","id":..,"type":..,"body":..}``; ``id`` is kept as a string (examples send ints)."""

    id: str
    type: str
    body: Any = None
    headers: Any = None  # InitConnection carries its auth in "headers"


@dataclass(frozen=True, slots=True)
class Response:
    """``{"kind":"resp","reqId":..,"type":..,"code":..,"body":..}``."""

    req_id: str
    type: str
    code: int
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class Notification:
    """``{"kind":"notification","type":..,"body":..}``."""

    type: str
    body: Any = None


Envelope = Request | Response | Notification


def _load_object(frame: str | bytes | bytearray) -> dict[str, Any]:
    if not isinstance(frame, (str, bytes, bytearray)):
        raise ProtocolError("not a text frame", type(frame).__name__)
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise ProtocolError("bad json", str(exc)[:80]) from None
    if not isinstance(data, dict):
        raise ProtocolError("not an object", type(data).__name__)
    return data


def _require_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        raise ProtocolError("missing field", key)
    if not isinstance(value, str) or not value:
        raise ProtocolError("wrong type", f"{key} must be a non-empty string")
    return value


def _request_id(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        raise ProtocolError("missing field", key)
    # The schema says string; the tutorial and docs send integers ("id":1). Accept both.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProtocolError("wrong type", f"{key} must be a string or an integer")
    text = str(value)
    if not 1 <= len(text) <= MAX_ID_LENGTH:
        raise ProtocolError("wrong type", f"{key} must be 1-{MAX_ID_LENGTH} characters")
    return text


def _from_dict(data: dict[str, Any]) -> Envelope:
    kind = data.get("kind")
    if kind is None:
        # The request schema makes "kind" optional; a frame with "id" and no "reqId" is a request.
        kind = "req" if "id" in data and "reqId" not in data else None
    if kind == "req":
        return Request(_request_id(data, "id"), _require_str(data, "type"), data.get("body"), data.get("headers"))
    if kind == "resp" or (kind is None and "reqId" in data):
        code = data.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ProtocolError("wrong type" if code is not None else "missing field", "code")
        # Documented close/InitConnection responses omit "type": tolerate it on the client side.
        rtype = data.get("type", "")
        if not isinstance(rtype, str):
            raise ProtocolError("wrong type", "type must be a string")
        return Response(_request_id(data, "reqId"), rtype, code, data.get("body"))
    if kind == "notification":
        return Notification(_require_str(data, "type"), data.get("body"))
    if kind is None:
        raise ProtocolError("missing field", "kind")
    raise ProtocolError("unknown kind", repr(kind)[:40])


def parse(frame: str | bytes | bytearray) -> Envelope:
    """Parse one text frame into an envelope; raise :class:`ProtocolError` if it is not one."""
    return _from_dict(_load_object(frame))


def parse_request(frame: str | bytes | bytearray) -> Request:
    """Parse a frame a server receives: it must be a request."""
    envelope = parse(frame)
    if not isinstance(envelope, Request):
        raise ProtocolError("not a request", type(envelope).__name__.lower())
    return envelope


def salvage_id(frame: str | bytes | bytearray, key: str) -> str | None:
    """The request id (``key``: ``"id"`` or ``"reqId"``) of a frame that failed to parse, if it names one.

    A server answers a broken request under the id it carried, and a client fails the request a
    broken response names instead of leaving it to time out; both read the id the same way: the
    top-level field when the frame is a JSON object, else the first ``"key": value`` in its text.
    """
    try:
        data = json.loads(frame)
    except (ValueError, TypeError, RecursionError):
        data = None
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and 0 < len(str(value)) <= MAX_ID_LENGTH:
            return str(value)
        return None
    text = frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")
    m = _id_pattern(key).search(text)
    return (m.group(1) or m.group(2)) if m else None


@lru_cache(maxsize=8)
def _id_pattern(key: str) -> re.Pattern[str]:
    n = MAX_ID_LENGTH
    return re.compile(rf'"{re.escape(key)}"\s*:\s*(?:"([^"]{{1,{n}}})"|(\d{{1,{n}}}))')

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_request(req_id: str | int, type_: str, body: Any = None, headers: Any = None) -> str:
    """A request frame; ``body`` is left out when None, as the tutorial's minimal request does."""
    frame: dict[str, Any] = {"kind": "req", "id": req_id, "type": type_}
    if body is not None:
        frame["body"] = body
    if headers is not None:
        frame["headers"] = headers
    return _dumps(frame)


def encode_response(req_id: str, type_: str, code: int, body: Any = None) -> str:
    """A response frame; ``body`` is always present, as ``infra/resp.json`` requires."""
    return _dumps(
        {"kind": "resp", "reqId": req_id, "type": type_, "code": code, "body": body if body is not None else {}}
    )


def encode_notification(type_: str, body: Any) -> str:
    return _dumps({"kind": "notification", "type": type_, "body": body})


def encode(envelope: Envelope) -> str:
    """Encode any envelope value back to its frame."""
    if isinstance(envelope, Request):
        return encode_request(envelope.id, envelope.type, envelope.body, envelope.headers)
    if isinstance(envelope, Response):
        return encode_response(envelope.req_id, envelope.type, envelope.code, envelope.body)
    return encode_notification(envelope.type, envelope.body)
