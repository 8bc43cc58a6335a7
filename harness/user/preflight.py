"""Before any user starts: prove the settings can work, so a wrong one is one line, not a storm.

For each host a TCP connect and, for https/wss, a TLS handshake verified as the run will verify it
(a certificate problem is found here, not by every session); then, against a real target, ONE
anonymous authorize for the configured account, so a wrong account, a wrong host or an unhealthy
IDP ends the run with exit code 2 and a line naming the setting before any load is sent. A 429
or 5xx there is the target's state, not a setting: the run starts, says so, and the retry policy
applies as for any session.
Against the embedded emulator the authorize is skipped: we started it, and its ledger must hold
exactly what the users did. Through a proxy (``--lp-proxy``, ``HTTPS_PROXY``...: docs/scale-out.md)
the connect is the proxy's CONNECT tunnel, so a proxy that refuses (its port, 403, 407, 5xx) is
one line naming it, by host:port only, and the fix.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

import requests

from harness.client.proxy import ProxyError, open_tunnel, requests_proxies
from harness.protocol import idp as contract
from harness.protocol import paths
from harness.protocol.retry import parse_retry_after
from harness.settings import Settings, SettingsError
from harness.settings_network import ProxyUrl, choose_proxy

log = logging.getLogger("lp-harness")
TIMEOUT_S = 5.0
_HOSTS = (("LP_IDP", "idp"), ("LP_ASYNCMESSAGINGENT", "messaging"))


def preflight(settings: Settings, *, authorize: bool) -> dict[str, int]:
    """SettingsError naming the setting and the fix when a host, its certificate or the account is wrong.

    Returns the requests it sent to the target, by step name (``{"sent": 1, "ok": 1}``), so a report
    can account for them: the target's own counts include them.
    """
    _say_environment_skipped(settings)
    for name, attr in _HOSTS:
        _reach(name, getattr(settings, attr), settings.verify_tls, _proxy(settings, getattr(settings, attr)))
    if authorize and settings.identity == "anonymous":
        ok = _authorize(settings)
        return {"anonymous-authorize": {"sent": 1, "ok": int(ok)}}
    return {}


def _proxy(settings: Settings, url: str) -> ProxyUrl | None:
    return choose_proxy(url, settings.proxy, embedded=settings.target == "emulator")


def _say_environment_skipped(settings: Settings) -> None:
    """Once: the environment's proxy is not the embedded emulator's (curl would use it; a user would not)."""
    if settings.target == "emulator" and not settings.proxy:
        try:
            skipped = choose_proxy(settings.socket_url, "")
        except SettingsError:
            skipped = None
        if skipped is not None:
            log.info("%s is not used for the embedded emulator (reached directly; --lp-proxy URL routes it)", skipped.origin)


def _reach(name: str, url: str, verify: bool, proxy: ProxyUrl | None = None) -> None:
    secure = urlsplit(url).scheme in paths.SECURE_SCHEMES
    host, port = paths.host_port(url)
    try:
        raw = _through(proxy, host, port) if proxy is not None else socket.create_connection((host, port), TIMEOUT_S)
    except ProxyError as exc:
        raise SettingsError(f"{name} {url}: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"{name} {url} is unreachable ({reason}): check the host and port, or unset LP_IDP and "
            "LP_ASYNCMESSAGINGENT to use the embedded emulator"
        ) from None
    with raw:
        if not secure:
            return
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with context.wrap_socket(raw, server_hostname=host):
                pass
        except ssl.SSLCertVerificationError as exc:
            raise SettingsError(
                f"{name} {url}: its TLS certificate is not trusted ({exc.verify_message}): point SSL_CERT_FILE at "
                "the CA that signed it, or use --lp-insecure for a test target you own"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"{name} {url}: the TLS handshake failed ({type(exc).__name__}: {exc}): is it an https port? "
                "Use http:// for a plain-text target"
            ) from None


def _through(proxy: ProxyUrl, host: str, port: int) -> socket.socket:
    """A socket tunnelled through ``proxy`` to ``host:port``; ProxyError when the proxy refuses."""
    try:
        return open_tunnel(proxy, host, port, lambda at, on: socket.create_connection((at, on), TIMEOUT_S))
    except OSError as exc:  # reset or timed out before its answer (ProxyError is no OSError)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ProxyError(f"proxy {proxy.where} ({proxy.origin}) did not answer CONNECT {host}:{port} ({reason})") from None


def _authorize(settings: Settings) -> bool:
    """True when the IDP issued a token; False (with a warning) when it is throttled or failing."""
    url = settings.idp + paths.anonymous_authorize_path(settings.account)
    try:
        answer = requests.post(
            url,
            headers={"Content-Type": contract.CONTENT_TYPE},
            timeout=TIMEOUT_S,
            verify=settings.verify_tls,
            proxies=requests_proxies(_proxy(settings, settings.idp)),
        )
    except requests.RequestException as exc:
        raise SettingsError(f"LP_IDP {settings.idp} did not answer an anonymous authorize ({type(exc).__name__})") from None
    status = answer.status_code
    where = f"LP_IDP {settings.idp} answered HTTP {status} to one anonymous authorize for LP_ACCOUNT {settings.account!r}"
    if status in (401, 403, 404):
        raise SettingsError(f"{where}: check LP_ACCOUNT (and that LP_IDP is the IDP of that account)")
    if status == 429:
        wait = parse_retry_after(answer.headers.get("Retry-After"), time.time()) or 1.0
        log.warning("%s: the account is throttled (Retry-After %.0f s); starting, and the retry policy applies", where, wait)
        return False
    if status >= 500:
        log.warning("%s: the IDP is failing; starting, and the retry policy applies", where)
        return False
    if not 200 <= status < 300:
        raise SettingsError(f"{where}: check LP_IDP and LP_ACCOUNT")
    try:
        contract.token_of(answer.json())
    except ValueError:  # not JSON, or no token in it
        raise SettingsError(f"{where} with no token in its body: is LP_IDP the IDP host?") from None
    return True
