"""Which local address each WebSocket leaves from: one round-robin mechanism, with two uses.

All sockets from one source address to one host:port share one ephemeral port range; once about
half of it is in use Linux searches it on every ``connect()`` (0.65 ms each at 18,000 held
sockets, against 0.02 ms when spread: ``bench/client_hold.py``). So sockets leave from several
addresses in turn, each bound with ``IP_BIND_ADDRESS_NO_PORT`` (the port is picked at connect,
per destination, so the bind itself searches nothing):

* by default (:data:`LOOPBACK`), sockets to a loopback target (the emulator) leave from 64
  loopback addresses; where 127/8 is not all on the loopback interface (macOS has only
  127.0.0.1) the bind fails and the socket connects as before;
* with ``--lp-source-addresses`` every socket leaves from the listed addresses (those of its
  destination's family), whatever the target; they were checked at start
  (:func:`harness.settings_network.source_addresses`), so a bind that fails is an error.

Through a proxy the destination is the proxy. The IDP's HTTP connections do not take part: a
user holds one only during its token phase, and its last call asks the server to close it.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Final

from gevent import socket as gsocket

from harness.client.resolver import ip_literal_family
from harness.settings_network import IP_BIND_ADDRESS_NO_PORT

LOOPBACK_SOURCES: Final = tuple(f"127.0.1.{n}" for n in range(1, 65))


class SourceAddresses:
    """Local addresses taken in turn, per address family; ``strict``: a failed bind is the socket's error."""

    __slots__ = ("_next", "strict", "loopback_only", "addresses")

    def __init__(self, addresses: Iterable[str], *, strict: bool, loopback_only: bool = False) -> None:
        self.addresses = tuple(addresses)
        self.strict = strict
        self.loopback_only = loopback_only
        by_family: dict[int, list[str]] = {}
        for address in self.addresses:
            by_family.setdefault(gsocket.AF_INET6 if ":" in address else gsocket.AF_INET, []).append(address)
        self._next: dict[int, Callable[[], str]] = {f: itertools.cycle(a).__next__ for f, a in by_family.items()}

    def bind(self, sock: gsocket.socket, family: int, destination: str) -> None:
        """Bind ``sock`` to the next address for a connection to ``destination`` (an IP), its port left to connect."""
        if self.loopback_only and not (family == gsocket.AF_INET and destination.startswith("127.")):
            return
        pick = self._next.get(family)
        if pick is None:
            if self.strict:  # e.g. IPv4 sources only, and this candidate address is IPv6: try the next one
                raise OSError(errno.EADDRNOTAVAIL, f"no source address of the family of {destination}")
            return
        try:
            sock.setsockopt(gsocket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((pick(), 0))
        except OSError:
            if self.strict:
                raise


LOOPBACK: Final = SourceAddresses(LOOPBACK_SOURCES, strict=False, loopback_only=True)


def connect_tcp(
    host: str, port: int, sources: SourceAddresses = LOOPBACK, address: tuple[Any, ...] | None = None
) -> gsocket.socket:
    """A connected TCP socket (``TCP_NODELAY``) to ``host:port``, from the next source address.

    An IP literal needs no resolver call (``address``: its ``(family, sockaddr)``, when the
    caller has it already); a name's addresses are tried in turn, and the last error is raised
    when none connects.
    """
    if address is None and (family := ip_literal_family(host)) is not None:
        address = (family, (host, port))
    if address is not None:
        candidates: Iterable[tuple[Any, ...]] = [address]
    else:
        candidates = [(info[0], info[4]) for info in gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)]
    error: OSError | None = None
    for family, sockaddr in candidates:
        sock = gsocket.socket(family, gsocket.SOCK_STREAM)
        try:
            sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            sources.bind(sock, family, sockaddr[0])
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"no address for {host}")
