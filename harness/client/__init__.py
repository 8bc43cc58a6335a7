"""The gevent consumer client: one WebSocket per session, typed failures with report categories."""

from harness.client.errors import (
    BadFrame,
    ClientError,
    CloseInfo,
    Dropped,
    ErrorResponse,
    HandshakeRejected,
    HttpStatusError,
    PongTimeout,
    ProxyError,
    Refused,
    ServerClosed,
    Timeout,
    TlsError,
    categorize,
)
from harness.client.socket import ConsumerSocket
from harness.client.transport import tls_context

__all__ = [
    "BadFrame",
    "ClientError",
    "CloseInfo",
    "ConsumerSocket",
    "Dropped",
    "ErrorResponse",
    "HandshakeRejected",
    "HttpStatusError",
    "PongTimeout",
    "ProxyError",
    "Refused",
    "ServerClosed",
    "Timeout",
    "TlsError",
    "categorize",
    "tls_context",
]
