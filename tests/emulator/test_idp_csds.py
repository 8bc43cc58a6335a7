"""The emulator's IDP and CSDS endpoints over real HTTP."""

from __future__ import annotations

import json
import socket
import time

import jwt
import pytest
import requests

from harness.protocol import paths, tokens
from tests.emulator.helpers import ACCOUNT, anonymous_token, lp_token


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _post(url: str, path: str, **kw: object) -> requests.Response:
    return requests.post(url + path, timeout=5, **kw)  # type: ignore[arg-type]


def _tutorial_external(account: str = ACCOUNT, lifetime: float = 600, now: float | None = None) -> str:
    key = tokens.load_private_key(tokens.TUTORIAL_PRIVATE_KEY_PEM)
    claims = tokens.external_claims(account, "+972-3-5555-555", now or time.time(), lifetime, given_name="Eitan")
    return tokens.sign(claims, key)


def test_anonymous_authorize_returns_jwt_and_token(emu) -> None:
    r = _post(emu.url, paths.anonymous_authorize_path(ACCOUNT), headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["jwt"] == body["token"]
    header = jwt.get_unverified_header(body["jwt"])
    assert header["alg"] == "RS256" and header["kid"] == "00002"
    claims = _claims(body["jwt"])
    assert claims["aud"] == f"acc:{ACCOUNT}" and claims["iss"] == tokens.LP_ISSUER
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["sub"]) == 36  # a UUID
    assert emu.ledger()["endpoints"]["anonymous-authorize"]["ok"] == 1


def test_anonymous_refresh_keeps_the_identity(emu) -> None:
    first = anonymous_token(emu.url)
    r = _post(emu.url, paths.anonymous_authorize_path(ACCOUNT), json={"id_token": first})
    assert r.status_code == 200
    assert _claims(r.json()["token"])["sub"] == _claims(first)["sub"]
    bad = _post(emu.url, paths.anonymous_authorize_path(ACCOUNT), json={"id_token": "x.y.z"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"


@pytest.mark.parametrize("key", ["authCode", "id_token"])
def test_authenticate_both_body_forms(emu, key: str) -> None:
    anon = anonymous_token(emu.url)
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={key: anon})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["jwt"] == body["token"]
    assert jwt.get_unverified_header(body["jwt"])["kid"] == tokens.DEFAULT_KID
    claims = _claims(body["jwt"])
    assert claims["aud"] == f"acc:{ACCOUNT}" and len(claims["sub"]) == 64
    assert claims["lp.ext"]["sub"] == _claims(anon)["sub"]
    assert claims["exp"] - claims["iat"] == 3600


def test_connector_authenticate_v3(emu) -> None:
    anon = anonymous_token(emu.url)
    path = paths.connector_authenticate_path(ACCOUNT, "12345678") + "?v=3.0"
    r = _post(emu.url, path, json={"id_token": anon})
    assert r.status_code == 200 and r.json()["token"]


def test_external_tutorial_key_is_trusted(emu) -> None:
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": _tutorial_external()})
    assert r.status_code == 200, r.text
    claims = _claims(r.json()["jwt"])
    assert claims["lp.ext"]["sub"] == "+972-3-5555-555"
    assert "lp_anon" not in claims["lp.ext"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"authCode": 5}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        ({"authCode": "not-a-jwt"}, 401, "invalid_token"),
    ],
)
def test_authenticate_rejects_bad_bodies(emu, body: object, status: int, error: str) -> None:
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json=body)
    assert r.status_code == status
    assert r.json() == {"code": status, "error": error, "message": r.json()["message"]}


def test_authenticate_invalid_json_and_no_body(emu) -> None:
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_json"
    r = _post(emu.url, paths.authenticate_path(ACCOUNT))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_authenticate_token_errors(emu) -> None:
    # wrong account: the anonymous token is for another account
    other = anonymous_token(emu.url, "other-account")
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": other})
    assert r.status_code == 403 and r.json()["error"] == "wrong_account"
    # bad signature: an external token signed by a key nobody trusts
    stranger = tokens.generate_signing_key(1024)
    forged = tokens.sign(tokens.external_claims(ACCOUNT, "someone", time.time(), 600), stranger)
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": forged})
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
    # expired: the tutorial's own payload expired in 2018
    expired = _tutorial_external(now=1471899942, lifetime=1534971930 - 1471899942)
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": expired})
    assert r.status_code == 401 and r.json()["error"] == "token_expired"
    ledger = emu.ledger()["endpoints"]["authenticate"]
    assert ledger["received"] == 3 and ledger["ok"] == 0
    assert ledger["errors"] == {"403": 1, "401": 2}


def test_signup_gives_an_lp_token(emu) -> None:
    r = _post(emu.url, f"/api/account/{ACCOUNT}/signup")
    assert r.status_code == 200
    assert _claims(r.json()["jwt"])["lp.ext"]["lp_anon"] is True


def test_unknown_paths_and_methods_are_json(emu) -> None:
    r = requests.get(emu.url + "/nothing/here", timeout=5)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = requests.get(emu.url + paths.authenticate_path(ACCOUNT), timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.json()["error"] == "method_not_allowed"


def test_oversized_body_is_a_json_413(emu) -> None:
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), data=b"x" * (300 * 1024))
    assert r.status_code == 413 and r.json()["code"] == 413


def test_account_restriction_and_lifetimes(emulator) -> None:
    emu = emulator("--account", ACCOUNT, "--anon-token-lifetime", "30", "--lp-token-lifetime", "45")
    r = _post(emu.url, paths.anonymous_authorize_path("someone-else"))
    assert r.status_code == 404 and r.json()["error"] == "unknown_account"
    anon = anonymous_token(emu.url)
    assert _claims(anon)["exp"] - _claims(anon)["iat"] == 30
    lp = lp_token(emu.url, external=anon)
    assert _claims(lp)["exp"] - _claims(lp)["iat"] == 45
    r = requests.get(emu.url + paths.csds_path("someone-else", "idp"), timeout=5)
    assert r.status_code == 404


def test_trust_key_file_and_no_tutorial_key(emulator, tmp_path) -> None:
    brand = tokens.generate_signing_key(1024)
    pem = tmp_path / "brand.pem"
    pem.write_text(brand.public_pem())
    emu = emulator("--trust-key", str(pem), "--no-tutorial-key")
    mine = tokens.sign(tokens.external_claims(ACCOUNT, "brand-user", time.time(), 600), brand)
    assert _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": mine}).status_code == 200
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": _tutorial_external()})
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"


def test_expired_anonymous_token_can_still_be_refreshed_within_the_window(emulator) -> None:
    emu = emulator("--anon-token-lifetime", "1", "--anon-refresh-window", "3600")
    anon = anonymous_token(emu.url)
    # an expired anonymous identity cannot authenticate but can be extended
    claims = _claims(anon)
    wait = claims["exp"] - time.time() + 0.05
    if wait > 0:
        time.sleep(wait)  # the token's own clock: nothing to await
    r = _post(emu.url, paths.authenticate_path(ACCOUNT), json={"authCode": anon})
    assert r.status_code == 401 and r.json()["error"] == "token_expired"
    r = _post(emu.url, paths.anonymous_authorize_path(ACCOUNT), json={"id_token": anon})
    assert r.status_code == 200 and _claims(r.json()["jwt"])["sub"] == claims["sub"]


# ---------------------------------------------------------------------- CSDS
def test_csds_single_service_and_all(emu) -> None:
    host = emu.url.split("://", 1)[1]
    for service in ("idp", "asyncMessagingEnt"):
        r = requests.get(emu.url + paths.csds_path(ACCOUNT, service), timeout=5)
        assert r.status_code == 200
        assert r.json() == {"service": service, "account": ACCOUNT, "baseURI": host}
    r = requests.get(emu.url + f"/api/account/{ACCOUNT}/service/baseURI.json?version=1.0", timeout=5)
    services = {e["service"]: e["baseURI"] for e in r.json()["baseURIs"]}
    assert services["idp"] == services["asyncMessagingEnt"] == host
    assert emu.ledger()["endpoints"]["csds"]["ok"] == 3


def test_csds_errors(emu) -> None:
    r = requests.get(emu.url + paths.csds_path(ACCOUNT, "AsyncMessagingEnt"), timeout=5)
    assert r.status_code == 404 and r.json()["error"] == "unknown_service"
    r = requests.get(emu.url + f"/api/account/{ACCOUNT}/service/idp/baseURI.json", timeout=5)
    assert r.status_code == 400
    assert emu.ledger()["endpoints"]["csds"]["errors"] == {"404": 1, "400": 1}


def test_connection_close_is_answered_then_closed_by_the_server(emu) -> None:
    """``Connection: close`` (the client's last token call): the answer says so and the server closes first."""
    body = b'{"authCode": "%s"}' % anonymous_token(emu.url).encode()
    host, port = emu.url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (paths.authenticate_path(ACCOUNT).encode(), len(body), body)
        )
        received = b""
        while chunk := sock.recv(65536):  # ends only when the server closes: recv returns b""
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" in head.lower()
    assert _claims(json.loads(payload)["jwt"])["aud"] == f"acc:{ACCOUNT}"
