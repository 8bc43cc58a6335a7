"""Reading a listen-address setting (``PORT`` or ``HOST:PORT``) into a checked ``(host, port)``.

Apart from :mod:`harness.settings_values` because only listen addresses need it; like those helpers
it raises :class:`SettingsError` naming the option and the fix. A bare port listens on loopback:
a shared machine's metrics are not everyone's unless ``HOST:PORT`` says so.
"""

from __future__ import annotations

import argparse
from typing import Final

from harness.settings_values import SettingsError

LOOPBACK: Final = "127.0.0.1"


def listen_address(options: argparse.Namespace, dest: str) -> tuple[str, int] | None:
    """``9646`` -> ``("127.0.0.1", 9646)``; ``0.0.0.0:9646``, ``[::1]:9646`` as given; empty or ``0``: None (off)."""
    flag = "--" + dest.replace("_", "-")
    raw = str(getattr(options, dest, None) or "").strip()
    if raw in ("", "0"):
        return None
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host = LOOPBACK
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    fix = f"give a port (1-65535, on {LOOPBACK}) or HOST:PORT, e.g. 9646 or 0.0.0.0:9646, or 0 for off"
    if sep and (not host or (":" in host and not raw.startswith("["))):
        raise SettingsError(f"{flag} {raw[:80]!r} is not an address: {fix} (an IPv6 host in brackets: [::1]:9646)")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise SettingsError(f"{flag} {raw[:80]!r} is not a port: {fix}")
    return host, port
