"""The IDP's and CSDS's request and answer bodies: which field carries which token, both ways.

Two generations of LivePerson's docs name the fields differently (lp-protocol.md 2.2): the
tutorial sends ``{"authCode": ...}`` and reads ``.jwt``; the newer docs send ``{"id_token": ...}``
and read ``.token``. The client sends one form and reads either; the emulator accepts both and
answers with both. Both sides take the names from here.
"""

from __future__ import annotations

from typing import Any, Final

from harness.protocol.paths import CSDS_SERVICES

# request bodies: the first name is what our client sends, the rest are accepted as well
AUTHENTICATE_FIELDS: Final = ("authCode", "id_token")
REFRESH_FIELDS: Final = ("id_token", "authCode")  # anonymous/authorize extending an identity
# answer bodies: the field names a token may come back in, in the order a client reads them
TOKEN_FIELDS: Final = ("jwt", "token")
CONTENT_TYPE: Final = "application/json"


class BodyError(ValueError):
    """A request or answer body that does not have the shape the IDP/CSDS contract says."""


def authorize_body(previous_token: str | None = None) -> dict[str, str] | None:
    """anonymous/authorize: no body for a new identity, ``{"id_token": old}`` to extend one."""
    return None if previous_token is None else {REFRESH_FIELDS[0]: previous_token}


def authenticate_body(auth_code: str) -> dict[str, str]:
    """authenticate: the tutorial's ``{"authCode": <external JWT>}``."""
    return {AUTHENTICATE_FIELDS[0]: auth_code}


def token_field(body: Any, fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` in a request body (None when the body is empty or names none of them).

    Raises :class:`BodyError` for a body that is not an object, or a field that is not a
    non-empty string: the server answers 400 for both.
    """
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BodyError("the body must be a JSON object")
    for name in fields:
        if name in body:
            value = body[name]
            if not isinstance(value, str) or not value:
                raise BodyError(f"{name} must be a non-empty string")
            return value
    return None


def token_answer(token: str) -> dict[str, str]:
    """What the IDP answers with a token: both generations' field names (our choice, lp-protocol.md 5)."""
    return {name: token for name in TOKEN_FIELDS}


def token_of(answer: Any) -> str:
    """The token in an IDP answer (``.jwt`` or ``.token``); BodyError when there is none."""
    if isinstance(answer, dict):
        for name in TOKEN_FIELDS:
            value = answer.get(name)
            if isinstance(value, str) and value:
                return value
    raise BodyError(f"IDP response has no {' or '.join(repr(n) for n in TOKEN_FIELDS)} field")


def error_body(status: int, error: str, message: str) -> dict[str, Any]:
    """An IDP/CSDS error answer (undocumented shape: docs/emulator.md "IDP")."""
    return {"code": status, "error": error, "message": message}


# ---------------------------------------------------------------- CSDS
def csds_answer(account: str, base_uri: str, service: str | None) -> dict[str, Any]:
    """CSDS's answer for one service, or (``service`` None) the list of every service."""
    entry = {"account": account, "baseURI": base_uri}
    if service is None:
        return {"baseURIs": [{"service": name, **entry} for name in CSDS_SERVICES]}
    return {"service": service, **entry}


def base_uri_of(answer: Any, service: str) -> str:
    """The host CSDS names for ``service``, in the single-service or the list form; BodyError if absent."""
    if isinstance(answer, dict):
        if isinstance(answer.get("baseURI"), str) and answer["baseURI"]:
            return answer["baseURI"]
        for entry in answer.get("baseURIs") or ():
            if isinstance(entry, dict) and entry.get("service") == service and isinstance(entry.get("baseURI"), str):
                return entry["baseURI"]
    raise BodyError(f"no baseURI for service {service!r}")


def lpcsds_answer(account: str, base_uri: str, service: str | None) -> dict[str, Any]:
    """The legacy CSDS answer (``baseURI.lpCsds``, loaded as JSONP) in the shape its clients read
    (obs, lp-protocol.md 1): ``ResultSet.lpData[0].lpServer`` for one service, and
    ``ResultSet.lpData.baseURIs`` for all of them."""
    if service is None:
        return {"ResultSet": {"lpData": csds_answer(account, base_uri, None)}}
    return {"ResultSet": {"lpData": [{"lpServer": base_uri, **csds_answer(account, base_uri, service)}]}}
