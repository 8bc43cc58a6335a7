"""JWT claims of the three tokens in the unauthenticated flow, signed and verified RS256.

- the *anonymous* (unauthenticated external) token the IDP's ``anonymous/authorize`` returns;
- an *external* token a brand signs itself (the tutorial's "Further Testing" claims);
- the *LP* token ``authenticate`` returns, the only credential of the consumer socket.

Claims follow the decoded examples in lp-protocol.md 2.4. Nothing here touches the network;
keys are passed in. :func:`redact` is the only form in which a token may reach a log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.warnings import InsecureKeyLengthWarning

LP_ISSUER: Final = "https://idp.liveperson.net"
DEFAULT_KID: Final = "00001"
ALGORITHM: Final = "RS256"
MAX_JWT_LENGTH: Final = 2048  # infra/consumerAuthenticationHeader.json

# The key pair printed in the tutorial's "Further Testing" section (public material).
TUTORIAL_PUBLIC_KEY_PEM: Final = """-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDdlatRjRjogo3WojgGHFHYLugdUWAY9iR3fy4arWNA1KoS8kVw33cJibXr8bvwUAUparCwlvdbH6dvEOfou0/gCFQsHUfQrSDv+MuSUMAe8jzKE4qW+jK+xQU9a03GUnKHkkle+Q0pX/g6jXZ7r1/xAK5Do2kQ+X5xK9cipRgEKwIDAQAB
-----END PUBLIC KEY-----
"""
TUTORIAL_PRIVATE_KEY_PEM: Final = """-----BEGIN RSA PRIVATE KEY-----
MIICWwIBAAKBgQDdlatRjRjogo3WojgGHFHYLugdUWAY9iR3fy4arWNA1KoS8kVw33cJibXr8bvwUAUparCwlvdbH6dvEOfou0/gCFQsHUfQrSDv+MuSUMAe8jzKE4qW+jK+xQU9a03GUnKHkkle+Q0pX/g6jXZ7r1/xAK5Do2kQ+X5xK9cipRgEKwIDAQABAoGAD+onAtVye4ic7VR7V50DF9bOnwRwNXrARcDhq9LWNRrRGElESYYTQ6EbatXS3MCyjjX2eMhu/aF5YhXBwkppwxg+EOmXeh+MzL7Zh284OuPbkglAaGhV9bb6/5CpuGb1esyPbYW+Ty2PC0GSZfIXkXs76jXAu9TOBvD0ybc2YlkCQQDywg2R/7t3Q2OE2+yo382CLJdrlSLVROWKwb4tb2PjhY4XAwV8d1vy0RenxTB+K5Mu57uVSTHtrMK0GAtFr833AkEA6avx20OHo61Yela/4k5kQDtjEf1N0LfI+BcWZtxsS3jDM3i1Hp0KSu5rsCPb8acJo5RO26gGVrfAsDcIXKC+bQJAZZ2XIpsitLyPpuiMOvBbzPavd4gY6Z8KWrfYzJoI/Q9FuBo6rKwl4BFoToD7WIUS+hpkagwWiz+6zLoX1dbOZwJACmH5fSSjAkLRi54PKJ8TFUeOP15h9sQzydI8zJU+upvDEKZsZc/UhT/SySDOxQ4G/523Y0sz/OZtSWcol/UMgQJALesy++GdvoIDLfJX5GBQpuFgFenRiRDabxrE9MNUZ2aPFaFp+DyAe+b4nDwuJaW2LURbr8AEZga7oQj0uYxcYw==
-----END RSA PRIVATE KEY-----
"""


class TokenError(Exception):
    """A token that must be refused; ``reason`` is a short category (expired, bad signature...)."""

    reason = "invalid token"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class TokenMalformed(TokenError):
    reason = "malformed token"


class TokenBadSignature(TokenError):
    reason = "bad signature"


class TokenExpired(TokenError):
    reason = "token expired"


class TokenWrongAccount(TokenError):
    reason = "wrong account"


def audience(account: str) -> str:
    return f"acc:{account}"


def redact(token: str | None) -> str:
    """A token as it may appear in logs and reports: a prefix and a short digest, never whole."""
    if not token:
        return "<none>"
    digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:10]
    return f"{token[:6]}...[{len(token)} chars, sha256:{digest}]"


# ---------------------------------------------------------------- claims
def anonymous_claims(account: str, now: float, lifetime_s: float, sub: str | None = None) -> dict[str, Any]:
    """An unauthenticated identity: a fresh UUID subject (lp-protocol.md 2.4, signup example)."""
    issued = int(now)
    return {
        "sub": sub or str(uuid.uuid4()),
        "aud": audience(account),
        "iss": LP_ISSUER,
        "iat": issued,
        "exp": issued + int(lifetime_s),
    }


def external_claims(
    account: str, sub: str, now: float, lifetime_s: float, given_name: str = "Load Test", issuer: str = LP_ISSUER
) -> dict[str, Any]:
    """A brand-signed external identity, shaped as in the tutorial's "Further Testing"."""
    issued = int(now)
    return {
        "sub": sub,
        "iss": issuer,
        "aud": audience(account),
        "exp": issued + int(lifetime_s),
        "iat": issued,
        "given_name": given_name,
    }


def consumer_id(external: dict[str, Any]) -> str:
    """The LP token's ``sub``: a 64-hex digest of the external identity (as in the docs' example)."""
    return hashlib.sha256(f"{external.get('iss', '')}|{external.get('sub', '')}".encode()).hexdigest()


def lp_claims(account: str, external: dict[str, Any], now: float, lifetime_s: float) -> dict[str, Any]:
    """The LP token for a verified external identity, ``lp.ext`` naming that identity."""
    issued = int(now)
    return {
        "sub": consumer_id(external),
        "aud": audience(account),
        "iss": LP_ISSUER,
        "lp.ext": {"sub": external.get("sub"), "iss": external.get("iss", LP_ISSUER)},
        "exp": issued + int(lifetime_s),
        "iat": issued,
    }


# ---------------------------------------------------------------- keys
@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` its tokens carry in the header."""

    private_key: rsa.RSAPrivateKey
    kid: str = DEFAULT_KID

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)

    @cached_property
    def signer(self) -> Signer:
        return Signer(self)


def generate_signing_key(bits: int = 1024, kid: str = DEFAULT_KID) -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=bits), kid)


def load_private_key(pem: str | bytes, kid: str = DEFAULT_KID) -> SigningKey:
    """A signing key from PEM (PKCS#1 or PKCS#8); ValueError if it is not an RSA private key."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key (RS256 needs RSA)")
    return SigningKey(key, kid)


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key (RS256 needs RSA)")
    return key


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


_dumps = json.JSONEncoder(separators=(",", ":")).encode  # what pyjwt uses for the payload


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Signer:
    """RS256 signing with one key, byte for byte what :func:`tokens.sign` (pyjwt) produces.

    The hot path signs two tokens per consumer flow; this skips pyjwt's generic work
    (header building and JSON, key preparation and length checks on every call): the header
    segment is encoded once and the key signs directly. PKCS#1 v1.5 is deterministic, so the
    tokens are identical to pyjwt's.
    """

    __slots__ = ("_prefix", "_private", "_padding", "_hash")

    def __init__(self, key: SigningKey) -> None:
        header = json.dumps(
            {"typ": "JWT", "alg": ALGORITHM, "kid": key.kid}, separators=(",", ":"), sort_keys=True
        )
        self._prefix = _b64(header.encode()) + b"."
        self._private = key.private_key
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self._prefix + _b64(_dumps(claims).encode())
        signature = self._private.sign(signing_input, self._padding, self._hash)
        return (signing_input + b"." + _b64(signature)).decode()


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """An RS256 JWT of ``claims`` signed with ``key``."""
    return key.signer.sign(claims)


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims read without checking the signature (a client reading its own token's ``exp``)."""
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenMalformed(str(exc)) from None


# ---------------------------------------------------------------- verification
@dataclass
class TokenVerifier:
    """Verifies RS256 tokens against trusted public keys for one expected account.

    Results are cached by token text: a token's signature and audience never change, so a
    cache hit re-checks only the expiry -- the checks are not weakened. The cache is there for
    the few seconds between a token's issue and its use in the same flow (``anonymous/authorize``
    then ``authenticate``, ``authenticate`` then the socket), where a hit saves a full check
    (~200 us, more than the signing). So an entry is kept ``keep_s`` seconds (covers the retries
    of a flow) and at most ``cache_size`` entries: memory is set by the flow rate over a minute,
    not by how long the process has run (a token is ~1 KB with its claims; caching every token
    of a token lifetime grew a soak's emulator by 2 KB a session). A token used again later is
    checked in full once and cached again.
    """

    public_keys: list[rsa.RSAPublicKey]
    leeway_s: float = 0.0
    cache_size: int = 16384
    keep_s: float = 60.0
    # A brand's external token may leave ``aud`` out: LivePerson lists only iss, iat and exp as its
    # mandatory claims. With ``audience_optional`` such a token is accepted when it has all of
    # ``required``; an ``aud`` that is there must still name this account.
    audience_optional: bool = False
    required: tuple[str, ...] = ()
    _cache: OrderedDict[str, tuple[float, dict[str, Any]]] = field(default_factory=OrderedDict, repr=False)

    def verify(self, token: str, account: str, now: float) -> dict[str, Any]:
        """The token's claims at wall-clock time ``now``, or a :class:`TokenError` saying why it is refused."""
        hit = self._cache.get(token)
        if hit is None:
            claims = self._verify_signature(token)
            self.remember(token, claims, now)
        else:
            claims = hit[1]
        missing = [name for name in self.required if name not in claims]
        if missing:
            raise TokenMalformed(f"no {missing[0]} claim")
        aud = claims.get("aud")
        if aud is None and self.audience_optional:
            pass
        elif aud != audience(account) and audience(account) not in _as_list(aud):
            raise TokenWrongAccount(f"token is for {aud!r}, not {audience(account)!r}")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise TokenMalformed("no exp claim")
        if exp + self.leeway_s <= now:
            raise TokenExpired(f"expired {int(now - exp)} s ago")
        return claims

    def remember(self, token: str, claims: dict[str, Any], now: float) -> None:
        """Trust ``token``'s signature for the next ``keep_s`` seconds (an issuer that signed it itself
        needs no check); audience and expiry are still checked on every :meth:`verify`."""
        cache = self._cache
        cache[token] = (now, claims)
        cache.move_to_end(token)
        horizon = now - self.keep_s
        while cache:  # oldest first: entries are in the order they were kept
            kept_at = next(iter(cache.values()))[0]
            if kept_at > horizon and len(cache) <= self.cache_size:
                break
            cache.popitem(last=False)

    @property
    def cached(self) -> int:
        """How many tokens the cache holds now."""
        return len(self._cache)

    def _verify_signature(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_JWT_LENGTH * 4:
            raise TokenMalformed("empty or oversized token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenMalformed(str(exc)) from None
        if header.get("alg") != ALGORITHM:
            raise TokenBadSignature(f"alg {header.get('alg')!r} is not {ALGORITHM}")
        last: Exception | None = None
        for key in self.public_keys:
            try:
                # exp and aud are checked by verify() on every call, cached or not. LivePerson's own
                # example LP token carries a 128-byte (RSA-1024) signature, so that size is expected
                # here, not a weakness to warn about on every new token.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                    return jwt.decode(
                        token, key, algorithms=[ALGORITHM], options={"verify_exp": False, "verify_aud": False}
                    )
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.PyJWTError as exc:
                raise TokenMalformed(str(exc)) from None
        raise TokenBadSignature(str(last) if last else "no trusted key")


def _as_list(value: object) -> Iterable[object]:
    return value if isinstance(value, list) else ()
