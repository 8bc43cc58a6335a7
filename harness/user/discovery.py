"""Before a run: find the hosts through CSDS when asked (once, on the master, before any user starts).

The lookups take the run's proxy route (``--lp-proxy``, else the environment's: docs/scale-out.md).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from harness.client.proxy import requests_proxies
from harness.protocol import idp as contract
from harness.protocol import paths
from harness.settings import SettingsError
from harness.settings_network import choose_proxy

DISCOVERY_TIMEOUT_S = 10.0


def discover(discovery: str, account: str, proxy: str = "") -> tuple[str, str]:
    """(idp, asyncMessagingEnt) host names for ``account`` from the CSDS Domain API (lp-protocol.md 1)."""
    if not account:
        raise SettingsError("LP_ACCOUNT is not set: CSDS discovery (--lp-discovery) needs the account id")
    try:
        base = paths.base_url(discovery)
    except ValueError as exc:
        raise SettingsError(
            f"LP_DISCOVERY (--lp-discovery) is malformed ({exc}): give a host like api.liveperson.net"
        ) from None
    found = []
    for service in (paths.IDP_SERVICE, paths.ASYNC_MESSAGING_SERVICE):
        url = base + paths.csds_path(account, service)
        via = choose_proxy(url, proxy)
        try:
            response = requests.get(url, timeout=DISCOVERY_TIMEOUT_S, proxies=requests_proxies(via))
        except requests.exceptions.ProxyError:  # only ever raised through a proxy
            who, fix = (f"{via.where} ({via.origin})", via.fix()) if via else ("", "check the proxy")
            raise SettingsError(f"LP_DISCOVERY {base}: the proxy {who} refused the lookup: {fix}") from None
        except requests.RequestException as exc:
            raise SettingsError(f"LP_DISCOVERY {base} is unreachable ({type(exc).__name__}): check the host") from None
        if response.status_code != 200:
            raise SettingsError(
                f"LP_DISCOVERY {base} answered {response.status_code} for service {service!r} of account {account!r}: "
                "check LP_ACCOUNT and LP_DISCOVERY"
            )
        try:
            found.append(contract.base_uri_of(response.json(), service))
        except ValueError:  # not JSON, or JSON with no baseURI for the service (BodyError)
            raise SettingsError(
                f"LP_DISCOVERY {base} gave no baseURI for service {service!r}: check LP_DISCOVERY"
            ) from None
    # CSDS gives bare host names; the scheme follows the discovery URL's (https for real accounts).
    scheme = urlsplit(base).scheme
    return f"{scheme}://{found[0]}", f"{scheme}://{found[1]}"
