"""The token phase's two IDP calls, over Locust's own HTTP client (geventhttpclient).

The calls go through :class:`locust.contrib.fasthttp.FastHttpSession` with ``catch_response``
so that Locust's transport is used while the *timing and reporting* stay in the one place the
user owns (``StepReporter.measure``): the returned context manager is never entered, so the
session fires no event of its own. Through a proxy (:mod:`harness.client.proxy`) the session
carries geventhttpclient's proxy settings, and a failure the proxy caused comes out as its
``ProxyError`` (``proxy refused``, ``proxy 407``...), naming the proxy, not the IDP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.client.errors import BadFrame, HttpStatusError
from harness.client.proxy import http_failure, refusal
from harness.protocol import idp as contract
from harness.protocol import paths, tokens
from harness.protocol.retry import parse_retry_after

if TYPE_CHECKING:
    from locust.contrib.fasthttp import FastHttpSession

    from harness.settings import Settings
    from harness.settings_network import ProxyUrl

JSON_HEADERS = {"Content-Type": contract.CONTENT_TYPE, "Accept": contract.CONTENT_TYPE}
# authenticate is the token phase's last call: the server closes the connection after it, so the
# TIME_WAIT lands on the server and not on one of the load generator's ephemeral ports (with
# thousands of sockets held to one host:port, a port search is what a connect() costs).
LAST_CALL_HEADERS = {**JSON_HEADERS, "Connection": "close"}


class IdpClient:
    """anonymous/authorize and authenticate for one account."""

    def __init__(self, session: FastHttpSession, account: str, proxy: ProxyUrl | None = None) -> None:
        self.session = session
        self.account = account
        self.proxy = proxy  # the session's proxy: the failures it causes are named after it
        # A plain proxy reads each http request on its own, and one that closes after each answer
        # without saying so (tinyproxy) would race the next call on that connection: a new one each.
        self._connection_per_call = proxy is not None and not (session.base_url or "").startswith("https:")
        self._authorize_path = paths.anonymous_authorize_path(account)
        self._authenticate_path = paths.authenticate_path(account)

    def anonymous_authorize(self, previous: str | None = None) -> str:
        """The unauthenticated external JWT (the tutorial reads ``.jwt``; newer docs ``.token``).

        ``previous``: an identity token of this consumer to extend (``{"id_token": old}``): the
        same consumer (``sub``) comes back with a new expiry, so it can still reach what it opened.
        """
        return _token_of(self._post(self._authorize_path, contract.authorize_body(previous)))

    def authenticate(self, auth_code: str) -> str:
        """Exchange an external JWT (the tutorial's ``{"authCode": ...}``) for the LP JWT."""
        return _token_of(self._post(self._authenticate_path, contract.authenticate_body(auth_code), LAST_CALL_HEADERS))

    def _post(self, path: str, body: dict[str, Any] | None, headers: dict[str, str] = JSON_HEADERS) -> Any:
        try:
            return self._call(path, body, headers)
        finally:
            if self._connection_per_call:
                self.session.client.close()

    def _call(self, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Any:
        try:
            response = self.session.request(
                "POST", path, data=json.dumps(body) if body is not None else "", headers=headers, catch_response=True
            )
        except RuntimeError as exc:  # geventhttpclient: the proxy refused the CONNECT
            if self.proxy is None:
                raise
            raise self._proxied(exc) from None
        error = getattr(response, "error", None)
        if response.status_code == 0 and error is not None:
            raise self._proxied(error)  # transport failure: refused, timeout, TLS... categorised by the caller
        if response.status_code == 407 and self.proxy is not None:  # an http IDP's request, refused by the proxy
            raise refusal(
                self.proxy, 407, "Proxy Authentication Required", *paths.host_port(self.session.base_url or "")
            )
        if not 200 <= response.status_code < 300:
            error = HttpStatusError(response.status_code, _error_text(response))
            error.retry_after = _retry_after(response)  # 429/503: the user's backoff waits at least this long
            raise error
        try:
            return json.loads(response.content or b"")
        except ValueError as exc:
            raise BadFrame(f"IDP answered {response.status_code} with a body that is not JSON ({exc})") from None

    def _proxied(self, exc: BaseException) -> BaseException:
        """``exc`` as the proxy's failure when the proxy caused it; as it is otherwise (or without a proxy)."""
        if self.proxy is None:
            return exc
        return http_failure(exc, self.proxy, *paths.host_port(self.session.base_url or ""))


class IdentitySource:
    """Where each session's authCode comes from: the IDP's anonymous identity, or a self-signed one."""

    def __init__(self, settings: Settings, user_tag: str) -> None:
        self.settings = settings
        self.user_tag = user_tag
        self.sessions = 0
        self._key: tokens.SigningKey | None = None
        if settings.identity == "external":
            pem = (
                Path(settings.external_key_file).read_text()
                if settings.external_key_file
                else tokens.TUTORIAL_PRIVATE_KEY_PEM
            )
            self._key = tokens.load_private_key(pem)

    @property
    def anonymous(self) -> bool:
        return self._key is None

    def new_external_sub(self) -> str:
        """The ``sub`` of a new external consumer, unique per user and session."""
        self.sessions += 1
        return f"lp-harness-{self.user_tag}-{self.sessions}"

    def external_token(self, sub: str | None = None) -> str:
        """A self-signed external identity: a new consumer, or (``sub``) the same one signed again."""
        assert self._key is not None, "external_token() needs identity=external"
        claims = tokens.external_claims(
            self.settings.account,
            sub=sub or self.new_external_sub(),
            now=time.time(),
            lifetime_s=3600,
            given_name="Load Test",
            issuer=self.settings.external_issuer,
        )
        return tokens.sign(claims, self._key)


def _token_of(body: Any) -> str:
    """The token of an IDP answer; an answer without one is a bad body (category "bad json")."""
    try:
        return contract.token_of(body)
    except contract.BodyError as exc:
        raise BadFrame(str(exc)) from None


def _error_text(response: Any) -> str:
    try:
        text = (response.content or b"")[:200].decode("utf-8", "replace")
    except Exception:  # a body we cannot read says nothing more than the status
        return ""
    return text


def _retry_after(response: Any) -> float | None:
    """``Retry-After`` in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    try:
        value = response.headers.get("Retry-After") if response.headers else None
    except (AttributeError, TypeError):
        return None
    return parse_retry_after(value, time.time()) if isinstance(value, str) else None
