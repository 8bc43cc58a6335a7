"""The emulator's IDP: anonymous identities, the authenticate exchange, and socket-token checks.

Plain Python over :mod:`harness.protocol.tokens`; the HTTP layer only turns an
:class:`IdpError` into a JSON error response. Statuses and bodies are our choice where the
docs are silent (lp-protocol.md section 4.1); docs/emulator.md lists them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from harness.protocol import tokens
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

ANON_KID = "00002"  # the anonymous-identity key; LP tokens carry kid 00001 as in the docs' examples
ANON_FLAG = "lp_anon"  # our marker inside "lp.ext": this LP token stands for an unauthenticated identity


class IssuingVerifier(TokenVerifier):
    """A :class:`TokenVerifier` that also knows the tokens this IDP issued with the same key.

    A token's text that this process signed itself needs no signature check: its claims are
    put in the verified-token cache when it is issued, and :meth:`TokenVerifier.verify` then
    checks audience and expiry exactly as for any cache hit (bounded the same way). Tokens
    from elsewhere (another ``--processes`` worker, a brand) are verified in full as before.
    """

    def remember(self, token: str, claims: dict[str, Any]) -> None:
        cache = self._cache
        cache[token] = claims
        if len(cache) > self.cache_size:
            cache.popitem(last=False)


class IdpError(Exception):
    """A refusal: HTTP ``status``, a short ``error`` word and a human ``message``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.status, "error": self.error, "message": self.message}


def token_error(exc: TokenError, wrong_account_status: int = 403) -> IdpError:
    """The HTTP refusal for a token check that failed."""
    if isinstance(exc, TokenWrongAccount):
        return IdpError(wrong_account_status, "wrong_account", exc.detail or exc.reason)
    if isinstance(exc, TokenExpired):
        return IdpError(401, "token_expired", exc.detail or exc.reason)
    if isinstance(exc, TokenBadSignature):
        return IdpError(401, "invalid_signature", exc.reason)
    return IdpError(401, "invalid_token", (exc.detail or exc.reason)[:200])


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified LP token: who the consumer is and when the socket must close."""

    consumer_id: str
    account: str
    exp: float
    anonymous: bool

    @property
    def expiry_close_code(self) -> int:
        # PROTO: 4407 asks to extend an unauthenticated identity at the IDP; 4401 asks for a fresh token.
        return 4407 if self.anonymous else 4401


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
    ) -> None:
        self.lp_key = lp_key
        self.anon_key = anon_key
        self.anon_lifetime_s = anon_lifetime_s
        self.lp_lifetime_s = lp_lifetime_s
        self.account = account
        self._anon = IssuingVerifier([anon_key.public_key])
        self._anon_refresh = TokenVerifier([anon_key.public_key], leeway_s=anon_refresh_window_s)
        self._external = TokenVerifier(list(trusted_keys))
        self._lp = IssuingVerifier([lp_key.public_key])
        self._anon_signer = Signer(anon_key)
        self._lp_signer = Signer(lp_key)

    # ------------------------------------------------------------------ checks
    def check_account(self, account: str) -> None:
        if self.account is not None and account != self.account:
            raise IdpError(404, "unknown_account", f"account {account!r} is not served by this emulator")

    @staticmethod
    def token_field(body: Any, *keys: str) -> str | None:
        """The first of ``keys`` present in a JSON object body; IdpError(400) if the body is wrong."""
        if body is None:
            return None
        if not isinstance(body, dict):
            raise IdpError(400, "invalid_request", "the body must be a JSON object")
        for key in keys:
            if key in body:
                value = body[key]
                if not isinstance(value, str) or not value:
                    raise IdpError(400, "invalid_request", f"{key} must be a non-empty string")
                return value
        return None

    # ------------------------------------------------------------------ endpoints
    def anonymous_authorize(self, account: str, body: Any, now: float | None = None) -> dict[str, str]:
        """A new anonymous identity, or (body ``{"id_token": old}``) the old one extended."""
        self.check_account(account)
        now = time.time() if now is None else now
        old = self.token_field(body, "id_token", "authCode")
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
        self._anon.remember(token, claims)
        return {"jwt": token, "token": token}

    def signup(self, account: str, now: float | None = None) -> dict[str, str]:
        """The docs' demo-only ``/signup``: an LP token for a fresh anonymous identity at once."""
        self.check_account(account)
        now = time.time() if now is None else now
        external = tokens.anonymous_claims(account, now, self.anon_lifetime_s)
        token = self._lp_token(account, external, True, now)
        return {"jwt": token, "token": token}

    def authenticate(self, account: str, body: Any, now: float | None = None) -> dict[str, str]:
        """Exchange an external (or anonymous) identity token for the LP token of the socket."""
        self.check_account(account)
        now = time.time() if now is None else now
        external_token = self.token_field(body, "authCode", "id_token")
        if external_token is None:
            raise IdpError(400, "invalid_request", "the body must carry authCode or id_token")
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
        return {"jwt": token, "token": token}

    def _lp_token(self, account: str, external: dict[str, Any], anonymous: bool, now: float) -> str:
        claims = tokens.lp_claims(account, external, now, self.lp_lifetime_s)
        if anonymous:
            claims["lp.ext"][ANON_FLAG] = True
        token = self._lp_signer.sign(claims)
        self._lp.remember(token, claims)
        return token

    # ------------------------------------------------------------------ the socket's credential
    def verify_lp_token(self, token: str, account: str, now: float | None = None) -> Identity:
        """The identity of an LP token presented to the messaging socket, or a TokenError."""
        claims = self._lp.verify(token, account, now)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenMalformed("no sub claim")
        ext = claims.get("lp.ext")
        anonymous = isinstance(ext, dict) and ext.get(ANON_FLAG) is True
        return Identity(sub, account, float(claims["exp"]), anonymous)


def new_conversation_id() -> str:
    return str(uuid.uuid4())
