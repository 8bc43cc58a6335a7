"""categorize(): every exception a session can meet maps to one report category."""

from __future__ import annotations

import errno
import json
import socket
import ssl

import gevent
import pytest
import requests
import websocket
from geventhttpclient.response import HTTPConnectionClosed
from geventhttpclient.useragent import BadStatusCode

from harness.client import (
    BadFrame,
    ClientError,
    Dropped,
    ErrorResponse,
    HandshakeRejected,
    HttpStatusError,
    PongTimeout,
    Refused,
    ServerClosed,
    Timeout,
    TlsError,
    categorize,
)
from harness.protocol import ProtocolError, Response


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (HttpStatusError(503), "http 503"),
        (Timeout(), "timeout"),
        (Refused(), "refused"),
        (TlsError(), "tls"),
        (BadFrame(), "bad json"),
        (HandshakeRejected(401), "handshake 401"),
        (ServerClosed(4401, "token expired"), "close 4401"),
        (ErrorResponse(400, Response("1", "x", 400)), "resp 400"),
        (PongTimeout(), "pong timeout"),
        (Dropped(), "dropped"),
        (ClientError("x", category="error Foo"), "error Foo"),
        (ProtocolError("bad json", "x"), "bad json"),
        (json.JSONDecodeError("x", "{", 0), "bad json"),
        (websocket.WebSocketBadStatusException("x", 403), "handshake 403"),
        (websocket.WebSocketTimeoutException("x"), "timeout"),
        (websocket.WebSocketConnectionClosedException("x"), "dropped"),
        (gevent.Timeout(1), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "dropped"),
        (BrokenPipeError(errno.EPIPE, "pipe"), "dropped"),
        (OSError(errno.EHOSTUNREACH, "unreachable"), "refused"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
        (ssl.SSLError(1, "wrong version number"), "tls"),
        (requests.exceptions.ReadTimeout("x"), "timeout"),
        (requests.exceptions.SSLError("x"), "tls"),
        (HTTPConnectionClosed("closed"), "dropped"),
        (BadStatusCode("http://x", code=429), "http 429"),
        (ValueError("x"), "error ValueError"),
        (KeyError("x"), "error KeyError"),
    ],
)
def test_categories(exc: BaseException, category: str) -> None:
    assert categorize(exc) == category


def test_requests_http_error_carries_its_status() -> None:
    response = requests.Response()
    response.status_code = 503
    assert categorize(requests.HTTPError("x", response=response)) == "http 503"


def test_wrapped_causes_are_unwrapped() -> None:
    try:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        except OSError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert categorize(outer) == "dropped"


def test_real_requests_refusal_is_refused() -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        requests.post(f"http://127.0.0.1:{_free_port()}/x", timeout=2)
    assert categorize(caught.value) == "refused"
