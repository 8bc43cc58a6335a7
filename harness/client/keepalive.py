"""A keep-alive check for Locust's HTTP client that works past 1,024 open descriptors.

geventhttpclient checks a pooled connection before reusing it with ``select.select([sock],
[], [], 0)``. ``select`` cannot take a descriptor above 1,023; the ``ValueError`` it raises
is read as "connection dead", so in a process holding more than ~1,000 sockets the token
phase's second call (authenticate) threw away the connection that anonymous-authorize had just
used, opened a new one and left the old one in TIME_WAIT on the load generator: about half of
all sessions at 2,000 users (counted with strace, bench/results/locust-capacity.md). This check
asks the kernel directly (a non-blocking ``MSG_PEEK``): nothing to read means idle and
reusable; end of stream or unread bytes mean not reusable, as before.
"""

from __future__ import annotations

import socket
from typing import Any

from geventhttpclient.connectionpool import ConnectionPool

_PEEK_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT


def _is_socket_alive(self: ConnectionPool, sock: Any) -> bool:
    if sock is None:
        return False
    raw = getattr(sock, "_sock", sock)  # gevent's socket wraps the OS socket; never block the hub
    try:
        if raw.fileno() < 0:
            return False
        raw.recv(1, _PEEK_FLAGS)
    except BlockingIOError:
        return True  # idle keep-alive connection: nothing to read
    except (OSError, ValueError):
        return False
    return False  # EOF, or bytes nobody asked for: not reusable


def install_keepalive_check() -> None:
    """Replace geventhttpclient's select()-based check (idempotent)."""
    ConnectionPool._is_socket_alive = _is_socket_alive  # type: ignore[method-assign]
