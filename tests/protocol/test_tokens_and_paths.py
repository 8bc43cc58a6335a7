"""Token claims, RS256 signing and verification, redaction, URL building."""

from __future__ import annotations

import time

import pytest

from harness.protocol import paths
from harness.protocol import tokens as t


@pytest.fixture(scope="module")
def idp_key() -> t.SigningKey:
    return t.generate_signing_key()


def test_anonymous_token_verifies_and_carries_claims(idp_key: t.SigningKey) -> None:
    now = time.time()
    token = t.sign(t.anonymous_claims("123", now, 600), idp_key)
    claims = t.TokenVerifier([idp_key.public_key]).verify(token, "123", now)
    assert claims["aud"] == "acc:123" and claims["exp"] - claims["iat"] == 600
    assert t.unverified_claims(token)["sub"] == claims["sub"]
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == t.DEFAULT_KID


def test_tutorial_external_token_and_lp_token() -> None:
    now = time.time()
    brand = t.load_private_key(t.TUTORIAL_PRIVATE_KEY_PEM)
    external = t.sign(t.external_claims("qa57221676", "+972-3-5555-555", now, 300, "Eitan"), brand)
    verifier = t.TokenVerifier([t.load_public_key(t.TUTORIAL_PUBLIC_KEY_PEM)])
    ext = verifier.verify(external, "qa57221676", now)
    assert ext["given_name"] == "Eitan"
    lp = t.lp_claims("qa57221676", ext, now, 3600)
    assert lp["lp.ext"]["sub"] == "+972-3-5555-555" and len(lp["sub"]) == 64


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("expired", t.TokenExpired),
        ("account", t.TokenWrongAccount),
        ("key", t.TokenBadSignature),
        ("junk", t.TokenMalformed),
    ],
)
def test_refusals_are_typed(idp_key: t.SigningKey, case: str, error: type[t.TokenError]) -> None:
    now = time.time()
    verifier = t.TokenVerifier([idp_key.public_key])
    token = t.sign(t.anonymous_claims("123", now, 60), idp_key)
    with pytest.raises(error):
        if case == "expired":
            verifier.verify(token, "123", now + 61)
        elif case == "account":
            verifier.verify(token, "999", now)
        elif case == "key":
            other = t.generate_signing_key()
            verifier.verify(t.sign(t.anonymous_claims("123", now, 60), other), "123", now)
        else:
            verifier.verify("not.a.jwt", "123", now)


def test_cached_token_still_expires(idp_key: t.SigningKey) -> None:
    now = time.time()
    verifier = t.TokenVerifier([idp_key.public_key])
    token = t.sign(t.anonymous_claims("123", now, 10), idp_key)
    verifier.verify(token, "123", now)  # now cached
    with pytest.raises(t.TokenExpired):
        verifier.verify(token, "123", now + 11)
    with pytest.raises(t.TokenWrongAccount):
        verifier.verify(token, "124", now)


def test_redact_never_shows_whole_token(idp_key: t.SigningKey) -> None:
    token = t.sign(t.anonymous_claims("123", time.time(), 60), idp_key)
    shown = t.redact(token)
    assert token not in shown and token.split(".")[1] not in shown and shown.startswith(token[:6])
    assert t.redact(None) == "<none>"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("va.idp.liveperson.net", "https://va.idp.liveperson.net"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_base_url(given: str, expected: str) -> None:
    assert paths.base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://x", "http://", "http://h:notaport", "http://h/path"])
def test_base_url_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        paths.base_url(bad)


def test_socket_url_maps_scheme() -> None:
    assert paths.socket_url("http://127.0.0.1:9", "42") == "ws://127.0.0.1:9/ws_api/account/42/messaging/consumer?v=3"
    assert paths.socket_url("msg.example", "42").startswith("wss://msg.example/ws_api/")


def test_signer_is_byte_for_byte_pyjwt(idp_key: t.SigningKey) -> None:
    import jwt

    now = time.time()
    external = t.external_claims("qa57221676", "+972-3-5555-555", now, 60, "Éitan ✓")
    for claims in (t.anonymous_claims("123", now, 60), t.lp_claims("123", external, now, 60), external):
        expected = jwt.encode(claims, idp_key.private_key, algorithm="RS256", headers={"kid": idp_key.kid})
        assert t.sign(claims, idp_key) == expected
