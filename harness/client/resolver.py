"""IP-literal hosts resolve in line, with no thread-pool hop; names still go to gevent's resolver.

gevent's default resolver runs every ``getaddrinfo`` in its thread pool, even for ``127.0.0.1``,
where the C call cannot block (``AI_NUMERICHOST``: no lookup at all). geventhttpclient resolves
on every new connection, and each session opens one (its HTTP connection is closed after the
token phase), so in churn mode that hop -- a native thread, a condition variable, the GIL
handed back and forth -- costs the client a measurable share of its CPU (bench/locust_capacity.py,
bench/results/locust-capacity.md). A host name, or anything that is not a plain numeric address
and port, goes to the hub's own resolver exactly as before, so a real DNS lookup never blocks
the loop, and the answers are the same as before in every case.
"""

from __future__ import annotations

import _socket
from typing import Any

from gevent.hub import get_hub


def ip_literal_family(host: str) -> int | None:
    """AF_INET or AF_INET6 when ``host`` is an IP address literal, None for a name."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def _numeric(host: Any, port: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not (port is None or isinstance(port, int) or (isinstance(port, str) and port.isdigit())):
        return False
    return ip_literal_family(host) is not None


class NumericFirstResolver:
    """Wraps the hub's resolver: ``getaddrinfo`` of an IP literal is answered here, the rest by it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:  # noqa: A002 -- gevent's signature
        if _numeric(host, port):
            return _socket.getaddrinfo(host, port, family, type, proto, flags | _socket.AI_NUMERICHOST)
        return self.inner.getaddrinfo(host, port, family, type, proto, flags)

    def __getattr__(self, name: str) -> Any:  # gethostbyname, close, ...: unchanged
        return getattr(self.inner, name)


def install_numeric_fast_path() -> None:
    """Wrap this thread's hub resolver once (idempotent, cheap enough to call per user)."""
    hub = get_hub()
    if not isinstance(hub.resolver, NumericFirstResolver):
        hub.resolver = NumericFirstResolver(hub.resolver)
