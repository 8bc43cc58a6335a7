"""The emulator's IDP: anonymous identities, the authenticate exchange, and socket-token checks.

Plain Python over :mod:`harness.protocol.tokens`; the HTTP layer only turns an
:class:`IdpError` into a JSON error response. Statuses and bodies are our choice where the
docs are silent (lp-protocol.md section 4.1); docs/emulator.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from harness.protocol import idp as contract
from harness.protocol import tokens
from harness.protocol.closing import expiry_close_code, is_anonymous, mark_anonymous, rejection_close_code
from harness.protocol.handshake import HandshakeError, token_of_authorization
from harness.protocol.tokens import (
    Signer,
    SigningKey,
    TokenBadSignature,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenVerifier,
    TokenWrongAccount,
)

EXTERNAL_REQUIRED_CLAIMS = ("iss", "iat")  # and exp, which every token needs
ANON_KID = "00002"  # the anonymous-identity key; LP tokens carry kid 00001 as in the docs' examples


class IdpError(Exception):
    """A refusal: HTTP ``status``, a short ``error`` word and a human ``message``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> dict[str, Any]:
        return contract.error_body(self.status, self.error, self.message)


def token_error(exc: TokenError, wrong_account_status: int = 403) -> IdpError:
    """The HTTP refusal for a token check that failed."""
    if isinstance(exc, TokenWrongAccount):
        return IdpError(wrong_account_status, "wrong_account", exc.detail or exc.reason)
    if isinstance(exc, TokenExpired):
        return IdpError(401, "token_expired", exc.detail or exc.reason)
    if isinstance(exc, TokenBadSignature):
        return IdpError(401, "invalid_signature", exc.reason)
    return IdpError(401, "invalid_token", (exc.detail or exc.reason)[:200])


def socket_token(authorization: str) -> str:
    """The LP token of a handshake's ``Authorization`` header; TokenMalformed if it is not ``jwt <token>``."""
    try:
        return token_of_authorization(authorization)
    except HandshakeError as exc:
        raise TokenMalformed(exc.detail) from None


def rejection_code(exc: TokenError, token: str | None) -> int:
    """The close code for a socket token refused after accepting the socket: 4407 when it was an
    expired token of an anonymous identity, else 4401."""
    expired = isinstance(exc, TokenExpired)
    claims = None
    if expired and token:
        try:
            claims = tokens.unverified_claims(token)
        except TokenError:
            claims = None
    return rejection_close_code(expired, claims)


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified LP token: who the consumer is and when the socket must close."""

    consumer_id: str
    account: str
    exp: float
    anonymous: bool

    @property
    def expiry_close_code(self) -> int:
        return expiry_close_code(self.anonymous)


class Idp:
    """Issues and checks the three tokens of the unauthenticated flow."""

    def __init__(
        self,
        *,
        lp_key: SigningKey,
        anon_key: SigningKey,
        trusted_keys: Sequence[rsa.RSAPublicKey] = (),
        anon_lifetime_s: float = 600.0,
        anon_refresh_window_s: float = 730 * 3600.0,
        lp_lifetime_s: float = 3600.0,
        account: str | None = None,
        on_identity: Callable[[bool], None] | None = None,
        token_cache_s: float = 60.0,
    ) -> None:
        self.on_identity = on_identity  # told of each anonymous identity issued (True: an old one extended)
        self.lp_key = lp_key
        self.anon_key = anon_key
        self.anon_lifetime_s = anon_lifetime_s
        self.lp_lifetime_s = lp_lifetime_s
        self.account = account
        keep = token_cache_s
        self._anon = TokenVerifier([anon_key.public_key], keep_s=keep)
        self._anon_refresh = TokenVerifier([anon_key.public_key], leeway_s=anon_refresh_window_s, keep_s=keep)
        # LivePerson lists iss, iat and exp as a brand token's mandatory claims: aud may be left out.
        self._external = TokenVerifier(
            list(trusted_keys), keep_s=keep, audience_optional=True, required=EXTERNAL_REQUIRED_CLAIMS
        )
        self._lp = TokenVerifier([lp_key.public_key], keep_s=keep)
        self._anon_signer = Signer(anon_key)
        self._lp_signer = Signer(lp_key)

    def cached_tokens(self) -> int:
        """Tokens the verifiers hold now (bounded by the flow rate over ``token_cache_s``)."""
        return sum(v.cached for v in (self._anon, self._anon_refresh, self._external, self._lp))

    # ------------------------------------------------------------------ checks
    def check_account(self, account: str) -> None:
        if self.account is not None and account != self.account:
            raise IdpError(404, "unknown_account", f"account {account!r} is not served by this emulator")

    @staticmethod
    def token_field(body: Any, fields: tuple[str, ...]) -> str | None:
        """The token a request body carries under one of ``fields``; IdpError(400) if the body is wrong."""
        try:
            return contract.token_field(body, fields)
        except contract.BodyError as exc:
            raise IdpError(400, "invalid_request", str(exc)) from None

    # ------------------------------------------------------------------ endpoints
    def anonymous_authorize(self, account: str, body: Any, now: float | None = None) -> dict[str, str]:
        """A new anonymous identity, or (body ``{"id_token": old}``) the old one extended."""
        self.check_account(account)
        now = time.time() if now is None else now
        old = self.token_field(body, contract.REFRESH_FIELDS)
        sub = None
        if old is not None:
            try:
                sub = self._anon_refresh.verify(old, account, now)["sub"]
            except TokenExpired as exc:
                raise IdpError(401, "refresh_expired", f"identity can no longer be extended ({exc.detail})") from None
            except TokenError as exc:
                raise token_error(exc) from None
        claims = tokens.anonymous_claims(account, now, self.anon_lifetime_s, sub)
        token = self._anon_signer.sign(claims)
        self._anon.remember(token, claims, now)
        if self.on_identity is not None:
            self.on_identity(sub is not None)
        return contract.token_answer(token)

    def signup(self, account: str, now: float | None = None) -> dict[str, str]:
        """The docs' demo-only ``/signup``: an LP token for a fresh anonymous identity at once."""
        self.check_account(account)
        now = time.time() if now is None else now
        external = tokens.anonymous_claims(account, now, self.anon_lifetime_s)
        token = self._lp_token(account, external, True, now)
        return contract.token_answer(token)

    def authenticate(self, account: str, body: Any, now: float | None = None) -> dict[str, str]:
        """Exchange an external (or anonymous) identity token for the LP token of the socket."""
        self.check_account(account)
        now = time.time() if now is None else now
        external_token = self.token_field(body, contract.AUTHENTICATE_FIELDS)
        if external_token is None:
            raise IdpError(400, "invalid_request", f"the body must carry {' or '.join(contract.AUTHENTICATE_FIELDS)}")
        anonymous = True
        try:
            claims = self._anon.verify(external_token, account, now)
        except TokenBadSignature:
            anonymous = False
            try:
                claims = self._external.verify(external_token, account, now)
            except TokenError as exc:
                raise token_error(exc) from None
        except TokenError as exc:
            raise token_error(exc) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise token_error(TokenMalformed("no sub claim"))
        token = self._lp_token(account, claims, anonymous, now)
        return contract.token_answer(token)

    def _lp_token(self, account: str, external: dict[str, Any], anonymous: bool, now: float) -> str:
        claims = tokens.lp_claims(account, external, now, self.lp_lifetime_s)
        if anonymous:
            mark_anonymous(claims)
        token = self._lp_signer.sign(claims)
        self._lp.remember(token, claims, now)
        return token

    # ------------------------------------------------------------------ the socket's credential
    def verify_lp_token(self, token: str, account: str, now: float | None = None) -> Identity:
        """The identity of an LP token presented to the messaging socket, or a TokenError."""
        claims = self._lp.verify(token, account, time.time() if now is None else now)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenMalformed("no sub claim")
        return Identity(sub, account, float(claims["exp"]), is_anonymous(claims))

    def socket_identity(self, authorization: str, account: str, now: float | None = None) -> Identity:
        """The identity of a handshake's ``Authorization`` header value, or a TokenError."""
        return self.verify_lp_token(socket_token(authorization), account, now)
