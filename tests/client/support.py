"""Helpers for the client tests: tokens from the emulator's IDP and waiting on its ledger.

Token calls use plain ``requests``: the client under test is only the socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from harness.protocol import paths

ACCOUNT = "qa57221676"


def lp_token(base_url: str, account: str = ACCOUNT, *, verify: bool = True) -> str:
    """The tutorial's token phase: anonymous-authorize, then authenticate with that authCode."""
    with requests.Session() as http:
        http.trust_env = False  # loopback only: no proxy lookups
        r = http.post(f"{base_url}{paths.anonymous_authorize_path(account)}", json=None, timeout=10, verify=verify)
        r.raise_for_status()
        body = r.json()
        external = body.get("jwt") or body.get("token")
        r = http.post(
            f"{base_url}{paths.authenticate_path(account)}", json={"authCode": external}, timeout=10, verify=verify
        )
        r.raise_for_status()
        body = r.json()
        return body.get("jwt") or body.get("token")


def ws_url(base_url: str, account: str = ACCOUNT) -> str:
    return paths.socket_url(base_url, account)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` (e.g. on the emulator's ledger, a separate process) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; last value: {value!r}")
        time.sleep(interval)
