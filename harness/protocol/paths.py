"""Every URL of the IDP, CSDS and messaging endpoints, declared once for the client and the server.

A :class:`Route` is a path template (``/api/account/{account}/authenticate``). The client fills it
(:meth:`Route.path`), the emulator registers it with aiohttp (:attr:`Route.template`) and its fast
lane matches raw request targets against it (:meth:`Route.match`), so the three can never name a
different path. Settings may name a host the way the tutorial does (``va.idp.liveperson.net``) or
a full URL (``http://127.0.0.1:8080``); :func:`base_url` makes either into a scheme://host[:port] base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlsplit

ASYNC_MESSAGING_SERVICE: Final = "asyncMessagingEnt"
IDP_SERVICE: Final = "idp"
CONSUMER_WS_VERSION: Final = "3"  # ?v=3 on the consumer socket (lp-protocol.md 3.1)
CSDS_VERSION: Final = "1.0"  # ?version=1.0 on CSDS lookups (lp-protocol.md 1)
CONNECTOR_AUTH_VERSION: Final = "3.0"  # ?v=3.0 on the connector form of authenticate
# What CSDS lists for an account: the two this flow needs and the others a console client asks for.
CSDS_SERVICES: Final = (IDP_SERVICE, ASYNC_MESSAGING_SERVICE, "liveEngageUI", "accdn", "agentVep")

_PARAM = re.compile(r"\{(\w+)\}")
_SEGMENT = "[^/]+"  # a path parameter is one segment, as aiohttp's {name} matches


@dataclass(frozen=True)
class Route:
    """One endpoint: the ledger/fault ``target`` name, its HTTP ``methods`` and the path template."""

    target: str
    methods: tuple[str, ...]
    template: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern()))

    def pattern(self, segment: str = _SEGMENT, suffix: str = "") -> str:
        """The template as regex source: each parameter a named group (``account`` + ``suffix``)
        matching ``segment``; a caller combining several routes in one regex passes a suffix each."""
        parts = _PARAM.split(self.template)
        return "".join(
            f"(?P<{part}{suffix}>{segment})" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.template))

    def path(self, **params: str) -> str:
        """The path for these parameters; each is percent-quoted so it stays one segment."""
        return self.template.format(**{k: quote(str(v), safe="") for k, v in params.items()})

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters of ``path`` (no query) if it is this route, else None."""
        m = self._regex.fullmatch(path)
        return m.groupdict() if m else None


ANONYMOUS_AUTHORIZE: Final = Route("anonymous-authorize", ("POST",), "/api/account/{account}/anonymous/authorize")
AUTHENTICATE: Final = Route("authenticate", ("POST",), "/api/account/{account}/authenticate")
# The newer docs' form (UNAUTH): /app/{connector}/authenticate?v=3.0; the same exchange.
CONNECTOR_AUTHENTICATE: Final = Route(
    "authenticate", ("POST",), "/api/account/{account}/app/{connector}/authenticate"
)
SIGNUP: Final = Route("signup", ("POST",), "/api/account/{account}/signup")  # the docs' demo-only shortcut
CSDS_SERVICE: Final = Route("csds", ("GET", "HEAD"), "/api/account/{account}/service/{service}/baseURI.json")
CSDS_ALL: Final = Route("csds", ("GET", "HEAD"), "/api/account/{account}/service/baseURI.json")
CONSUMER_SOCKET: Final = Route("connect", ("GET", "HEAD"), "/ws_api/account/{account}/messaging/consumer")
# The older discovery forms clients in the wild still load (lp-protocol.md 1, obs: LivePerson's SDK
# samples): the same CSDS answers under /csdr/, and JSONP forms for a browser's script tag
# (``?cb=``/``?callback=``), the IDP's signup too. Same ledger targets as the forms above.
CSDR_SERVICE: Final = Route("csds", ("GET", "HEAD"), "/csdr/account/{account}/service/{service}/baseURI.json")
CSDR_ALL: Final = Route("csds", ("GET", "HEAD"), "/csdr/account/{account}/service/baseURI.json")
CSDR_SERVICE_JSONP: Final = Route("csds", ("GET", "HEAD"), "/csdr/account/{account}/service/{service}/baseURI.lpCsds")
CSDR_ALL_JSONP: Final = Route("csds", ("GET", "HEAD"), "/csdr/account/{account}/service/baseURI.lpCsds")
SIGNUP_JSONP: Final = Route("signup", ("GET", "HEAD"), "/api/account/{account}/signup.jsonp")
JSONP_CALLBACK_PARAMS: Final = ("cb", "callback")  # the query parameter naming the JSONP callback

IDP_ROUTES: Final = (ANONYMOUS_AUTHORIZE, AUTHENTICATE, CONNECTOR_AUTHENTICATE, SIGNUP)
CSDS_ROUTES: Final = (CSDS_SERVICE, CSDS_ALL, CSDR_SERVICE, CSDR_ALL)
JSONP_ROUTES: Final = (CSDR_SERVICE_JSONP, CSDR_ALL_JSONP, SIGNUP_JSONP)
ROUTES: Final = (*IDP_ROUTES, *CSDS_ROUTES, *JSONP_ROUTES, CONSUMER_SOCKET)


def anonymous_authorize_path(account: str) -> str:
    return ANONYMOUS_AUTHORIZE.path(account=account)


def authenticate_path(account: str) -> str:
    return AUTHENTICATE.path(account=account)


def connector_authenticate_path(account: str, connector_id: str) -> str:
    return CONNECTOR_AUTHENTICATE.path(account=account, connector=connector_id)


def consumer_socket_path(account: str) -> str:
    return f"{CONSUMER_SOCKET.path(account=account)}?v={CONSUMER_WS_VERSION}"


def csds_path(account: str, service: str) -> str:
    return f"{CSDS_SERVICE.path(account=account, service=service)}?version={CSDS_VERSION}"


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


SECURE_SCHEMES: Final = ("https", "wss")


def default_port(scheme: str) -> int:
    """The port a URL of ``scheme`` means when it names none."""
    return 443 if scheme in SECURE_SCHEMES else 80


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a URL, its scheme's default port when it names none."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or default_port(parts.scheme)


def socket_url(messaging_base: str, account: str) -> str:
    """The consumer WebSocket URL for a messaging host or base URL (http->ws, https->wss)."""
    base = base_url(messaging_base, default_scheme="wss")
    scheme, rest = base.split("://", 1)
    scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{scheme}://{rest}{consumer_socket_path(account)}"
