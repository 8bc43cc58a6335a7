"""The LivePerson consumer-messaging protocol, with no I/O.

Both the gevent load client and the asyncio emulator speak the protocol through this
package, the way ``h11`` and ``websockets`` keep a sans-I/O core: frames and tokens go in,
typed values come out, and nothing here opens a socket, sleeps or imports an event loop.
"""

from harness.protocol.closing import CloseCode, close_reason
from harness.protocol.correlation import Correlator, PendingRequest, RequestIds
from harness.protocol.envelope import (
    Envelope,
    Notification,
    ProtocolError,
    Request,
    Response,
    encode,
    encode_notification,
    encode_request,
    encode_response,
    parse,
    parse_request,
)
from harness.protocol.messages import MessageType, response_type_for

__all__ = [
    "CloseCode",
    "Correlator",
    "Envelope",
    "MessageType",
    "Notification",
    "PendingRequest",
    "ProtocolError",
    "Request",
    "RequestIds",
    "Response",
    "close_reason",
    "encode",
    "encode_notification",
    "encode_request",
    "encode_response",
    "parse",
    "parse_request",
    "response_type_for",
]
