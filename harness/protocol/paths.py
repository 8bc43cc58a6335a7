"""URL paths of the IDP, CSDS and messaging endpoints, and how to join them to a host setting.

Settings may name a host the way the tutorial does (``va.idp.liveperson.net``) or a full URL
(``http://127.0.0.1:8080``); :func:`base_url` makes either into a scheme://host[:port] base.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

ASYNC_MESSAGING_SERVICE: Final = "asyncMessagingEnt"
IDP_SERVICE: Final = "idp"
CONSUMER_WS_VERSION: Final = "3"


def anonymous_authorize_path(account: str) -> str:
    return f"/api/account/{account}/anonymous/authorize"


def authenticate_path(account: str) -> str:
    return f"/api/account/{account}/authenticate"


def connector_authenticate_path(account: str, connector_id: str) -> str:
    """The newer docs' form (UNAUTH): ``/app/{connectorId}/authenticate?v=3.0``."""
    return f"/api/account/{account}/app/{connector_id}/authenticate"


def consumer_socket_path(account: str) -> str:
    return f"/ws_api/account/{account}/messaging/consumer?v={CONSUMER_WS_VERSION}"


def csds_path(account: str, service: str) -> str:
    return f"/api/account/{account}/service/{service}/baseURI.json?version=1.0"


def base_url(host_or_url: str, default_scheme: str = "https") -> str:
    """``host`` or ``scheme://host[:port][/]`` -> ``scheme://host[:port]``; ValueError if malformed."""
    text = host_or_url.strip()
    if not text:
        raise ValueError("empty host")
    if "://" not in text:
        text = f"{default_scheme}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported scheme {parts.scheme!r} (use http, https, ws or wss)")
    if not parts.hostname:
        raise ValueError(f"no host in {host_or_url!r}")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"bad port in {host_or_url!r}") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{host_or_url!r} must be a host or base URL, with no path or query")
    return f"{parts.scheme}://{parts.netloc}"


def socket_url(messaging_base: str, account: str) -> str:
    """The consumer WebSocket URL for a messaging host or base URL (http->ws, https->wss)."""
    base = base_url(messaging_base, default_scheme="wss")
    scheme, rest = base.split("://", 1)
    scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{scheme}://{rest}{consumer_socket_path(account)}"
