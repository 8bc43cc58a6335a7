"""The run's network route as settings: which HTTP proxy a URL goes through, which local addresses to leave from.

Kept apart from :mod:`harness.settings_values` (one value each) because both settings are
decided here once for the settings check, the preflight and the client alike:

* ``--lp-proxy`` / ``LP_PROXY``: unset, the environment's ``HTTPS_PROXY`` (wss/https targets),
  ``HTTP_PROXY`` (ws/http), ``ALL_PROXY`` and ``NO_PROXY`` (lowercase first), read by requests'
  own functions so a host, domain, IP, CIDR or port in ``NO_PROXY`` means what it means to
  requests and curl; never for the embedded emulator, which the harness starts on loopback
  itself (a corporate ``HTTPS_PROXY`` is for reaching the internet, not for 127.0.0.1).
  ``none``/``direct``: no proxy at all. A URL ``http://[user:pass@]host[:port]``: every
  connection of the run goes through it, the embedded emulator's too, whatever the environment says.
* ``--lp-source-addresses`` / ``LP_SOURCE_ADDRESSES``: local IPs and CIDRs the WebSocket
  sockets leave from in turn, each checked to be assignable on this host at start.

Every error is a :class:`SettingsError` naming the setting (or the environment variable) and
the fix; a proxy is named by ``host:port``, never with its password.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from requests.utils import get_environ_proxies, select_proxy

from harness.settings_values import SettingsError

PROXY_FLAG: Final = "--lp-proxy/LP_PROXY"
DIRECT: Final = "none"  # the normalised value of --lp-proxy none / direct
DIRECT_WORDS: Final = ("none", "direct")
SOURCES_ENV: Final = "LP_SOURCE_ADDRESSES"
SOURCES_FLAG: Final = f"--lp-source-addresses/{SOURCES_ENV}"
MAX_SOURCE_ADDRESSES: Final = 4096  # each gives a whole ephemeral port range per target: plenty
IP_BIND_ADDRESS_NO_PORT: Final = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2; the client's too
_HTTP_SCHEME_OF: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True, slots=True)
class ProxyUrl:
    """An HTTP proxy: where it is, its basic-auth credentials, and which setting named it."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    origin: str = PROXY_FLAG  # "--lp-proxy/LP_PROXY", "HTTPS_PROXY", "https_proxy", ...

    @property
    def where(self) -> str:
        """``host:port``: how every message names the proxy (never with its password)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for credentials in the URL, None without them."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    @property
    def url(self) -> str:
        """The proxy as requests wants it, credentials included (a secret: never logged)."""
        if self.authorization is None:
            return f"http://{self.where}"
        return f"http://{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@{self.where}"

    def fix(self) -> str:
        """How to change the route when this proxy is the problem, for the setting that named it."""
        if self.origin == PROXY_FLAG:
            return f"fix {PROXY_FLAG}, or give --lp-proxy none to connect directly"
        return f"fix {self.origin}, add the host to NO_PROXY, or give --lp-proxy none (or another proxy URL)"


def parse_proxy_url(text: str, origin: str = PROXY_FLAG) -> ProxyUrl:
    """``http://[user:pass@]host[:port]`` (no scheme: http, as requests reads it; no port: 80).

    ValueError saying what is wrong, without repeating the value (it may hold a password).
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("its port is not a number from 1 to 65535")
    if parts.scheme.lower() != "http":
        raise ValueError(f"{parts.scheme}:// proxies are not supported, only http:// ones (CONNECT tunnels)")
    if not parts.hostname:
        raise ValueError("it names no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("a proxy URL is a host and port, with no path")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyUrl(parts.hostname, port or 80, username, password, origin)


def proxy(options: argparse.Namespace, bases: tuple[str, ...] = ()) -> str:
    """``--lp-proxy`` checked: ``""`` (the environment's), ``"none"``, or a proxy URL.

    With the environment's, its proxies for ``bases`` (the targets' base URLs) are checked too,
    so a malformed ``HTTPS_PROXY`` is one line at start, not a failure per session.
    """
    raw = str(getattr(options, "lp_proxy", None) or "").strip()
    if raw.lower() in DIRECT_WORDS:
        return DIRECT
    if raw:
        choose_proxy("", raw)
        return raw
    if not getattr(options, "lp_embedded_url", None):
        for base in bases:
            choose_proxy(base, "")
    return ""


def choose_proxy(url: str, setting: str, *, embedded: bool = False) -> ProxyUrl | None:
    """The proxy a connection to ``url`` (ws, wss, http, https) goes through under ``setting``; None: direct.

    ``embedded``: the target is the emulator the harness started, which the environment's
    proxies never apply to (an explicit ``--lp-proxy`` URL still does).
    """
    if setting.strip().lower() in DIRECT_WORDS:
        return None
    if setting:
        try:
            return parse_proxy_url(setting)
        except ValueError as exc:
            raise SettingsError(
                f"{PROXY_FLAG} is not a proxy URL ({exc}): give http://[user:pass@]host:port, or none"
            ) from None
    if embedded:
        return None
    scheme, sep, rest = url.partition("://")
    http_url = f"{_HTTP_SCHEME_OF.get(scheme.lower(), scheme)}{sep}{rest}"
    raw = select_proxy(http_url, get_environ_proxies(http_url))
    if not raw:
        return None
    origin = _environment_name(raw, http_url.partition(":")[0])
    try:
        return parse_proxy_url(raw, origin)
    except ValueError as exc:
        raise SettingsError(f"{origin} is not a proxy URL the harness can use ({exc}): {_ENV_FIX}") from None


_ENV_FIX = "give http://[user:pass@]host:port there, or --lp-proxy with one, or --lp-proxy none"


def _environment_name(value: str, scheme: str) -> str:
    """Which variable ``value`` came from (requests prefers the lowercase name), for messages."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if os.environ.get(name, "").strip() == value.strip():
            return name
    return f"{scheme.upper()}_PROXY"


def redacted(setting: str) -> str:
    """``--lp-proxy`` as reports may show it: the password replaced by ``***``."""
    if setting in ("", DIRECT):
        return setting
    try:
        found = parse_proxy_url(setting)
    except ValueError:
        return "(unreadable)"
    return f"http://{found.username or ''}:***@{found.where}" if found.authorization else f"http://{found.where}"


# ---------------------------------------------------------------------------- source addresses
def source_addresses(options: argparse.Namespace) -> tuple[str, ...]:
    """``--lp-source-addresses`` expanded (a CIDR: its host addresses) and checked assignable here.

    Unset in the options, this host's own ``LP_SOURCE_ADDRESSES`` applies: a Locust worker gets
    the master's options, which name no address of the worker's host, so each load host can set
    its own (docs/scale-out.md).
    """
    raw = str(getattr(options, "lp_source_addresses", None) or os.environ.get(SOURCES_ENV, "")).strip()
    if not raw:
        return ()
    addresses = expand_sources(raw)
    for address in addresses:
        _check_assignable(address)
    return addresses


def expand_sources(text: str) -> tuple[str, ...]:
    """``"10.0.0.5, 10.0.1.0/30"`` -> ``("10.0.0.5", "10.0.1.1", "10.0.1.2")``, in order, each once.

    A CIDR stands for the addresses a host may hold in it (``ipaddress``'s ``hosts()``: not the
    network and broadcast addresses of an IPv4 prefix shorter than /31).
    """
    seen: dict[str, None] = {}
    for item in (part.strip() for part in text.replace(";", ",").split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                f"{SOURCES_FLAG}: {item[:60]!r} is not an IP address or CIDR: give local addresses and/or "
                "networks separated by commas, e.g. 10.0.0.5,10.0.1.0/28"
            ) from None
        if network.num_addresses > MAX_SOURCE_ADDRESSES:
            raise SettingsError(
                f"{SOURCES_FLAG}: {item} holds over {MAX_SOURCE_ADDRESSES} addresses: give a smaller one"
            )
        hosts = [network.network_address] if network.num_addresses == 1 else list(network.hosts())
        for address in hosts:
            seen[str(address)] = None
        if len(seen) > MAX_SOURCE_ADDRESSES:
            raise SettingsError(f"{SOURCES_FLAG}: more than {MAX_SOURCE_ADDRESSES} addresses in all: give fewer")
    if not seen:
        raise SettingsError(f"{SOURCES_FLAG} names no address: give local IPs and/or CIDRs, or leave it unset")
    return tuple(seen)


def _check_assignable(address: str) -> None:
    """A bind to ``address`` (no port taken) succeeds, or the address is named with the fix."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            with contextlib.suppress(OSError):  # Linux >= 4.2: the check takes no port
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((address, 0))
    except OSError as exc:
        why = "not an address of this host" if exc.errno == errno.EADDRNOTAVAIL else (exc.strerror or str(exc))
        prefix = 128 if family == socket.AF_INET6 else 32
        raise SettingsError(
            f"{SOURCES_FLAG}: {address} cannot be used here ({why}): give addresses assigned to this host's "
            f"interfaces (ip -br addr), or add it, e.g. ip addr add {address}/{prefix} dev eth0"
        ) from None
