"""Before any user starts: prove the settings can work, so a wrong one is one line, not a storm.

For each host a TCP connect and, for https/wss, a TLS handshake verified as the run will verify it
(a certificate problem is found here, not by every session); then, against a real target, ONE
anonymous authorize for the configured account, so a wrong account, a wrong host or an unhealthy
IDP ends the run with exit code 2 and a line naming the setting before any load is sent. A 429
or 5xx there is the target's state, not a setting: the run starts, says so, and the retry policy
applies as for any session.
Against the embedded emulator the authorize is skipped: we started it, and its ledger must hold
exactly what the users did.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

import requests

from harness.protocol import idp as contract
from harness.protocol import paths
from harness.protocol.retry import parse_retry_after
from harness.settings import Settings, SettingsError

log = logging.getLogger("lp-harness")
TIMEOUT_S = 5.0
_HOSTS = (("LP_IDP", "idp"), ("LP_ASYNCMESSAGINGENT", "messaging"))


def preflight(settings: Settings, *, authorize: bool) -> dict[str, int]:
    """SettingsError naming the setting and the fix when a host, its certificate or the account is wrong.

    Returns the requests it sent to the target, by step name (``{"sent": 1, "ok": 1}``), so a report
    can account for them: the target's own counts include them.
    """
    for name, attr in _HOSTS:
        _reach(name, getattr(settings, attr), settings.verify_tls)
    if authorize and settings.identity == "anonymous":
        ok = _authorize(settings)
        return {"anonymous-authorize": {"sent": 1, "ok": int(ok)}}
    return {}


def _reach(name: str, url: str, verify: bool) -> None:
    secure = urlsplit(url).scheme in paths.SECURE_SCHEMES
    host, port = paths.host_port(url)
    try:
        raw = socket.create_connection((host, port), timeout=TIMEOUT_S)
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


def _authorize(settings: Settings) -> bool:
    """True when the IDP issued a token; False (with a warning) when it is throttled or failing."""
    url = settings.idp + paths.anonymous_authorize_path(settings.account)
    try:
        answer = requests.post(
            url, headers={"Content-Type": contract.CONTENT_TYPE}, timeout=TIMEOUT_S, verify=settings.verify_tls
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
