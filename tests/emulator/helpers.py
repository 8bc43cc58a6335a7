"""Helpers for the emulator tests: token calls and a small consumer-socket client."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import requests
import websocket

from harness.protocol import paths

ACCOUNT = "qa57221676"
SCHEMAS = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "schemas"


def anonymous_token(url: str, account: str = ACCOUNT, **kw: Any) -> str:
    r = requests.post(
        url + paths.anonymous_authorize_path(account), headers={"Content-Type": "application/json"}, timeout=5, **kw
    )
    assert r.status_code == 200, r.text
    return r.json()["jwt"]


def lp_token(url: str, account: str = ACCOUNT, external: str | None = None, **kw: Any) -> str:
    external = external or anonymous_token(url, account, **kw)
    r = requests.post(url + paths.authenticate_path(account), json={"authCode": external}, timeout=5, **kw)
    assert r.status_code == 200, r.text
    return r.json()["jwt"]


def ws_url(url: str, account: str = ACCOUNT) -> str:
    return paths.socket_url(url, account)


class Client:
    """A small synchronous consumer-socket client (websocket-client) for tests."""

    def __init__(
        self,
        url: str,
        token: str | None,
        account: str = ACCOUNT,
        timeout: float = 5.0,
        sslopt: dict[str, Any] | None = None,
    ) -> None:
        header = [f"Authorization: jwt {token}"] if token is not None else []
        self.ws = websocket.create_connection(ws_url(url, account), header=header, timeout=timeout, sslopt=sslopt)
        self.next_id = 1
        self.frames: list[str] = []

    def send(self, type_: str, body: Any = None, req_id: Any = None) -> str:
        rid = req_id if req_id is not None else self.next_id
        self.next_id += 1
        frame: dict[str, Any] = {"kind": "req", "id": rid, "type": type_}
        if body is not None:
            frame["body"] = body
        self.ws.send(json.dumps(frame))
        return str(rid)

    def recv_json(self) -> dict[str, Any]:
        text = self.ws.recv()
        self.frames.append(text)
        return json.loads(text)

    def request(self, type_: str, body: Any = None, req_id: Any = None) -> dict[str, Any]:
        """Send a request and return its response (notifications that come first are kept in .notes)."""
        rid = self.send(type_, body, req_id)
        while True:
            msg = self.recv_json()
            if msg.get("kind") == "resp":
                assert msg["reqId"] == rid, msg
                return msg
            self.notes.append(msg)

    @property
    def notes(self) -> list[dict[str, Any]]:
        if not hasattr(self, "_notes"):
            self._notes: list[dict[str, Any]] = []
        return self._notes

    def wait_close(self) -> tuple[int | None, str]:
        """Read until the server's close frame; returns (close code, reason)."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return code, data[2:].decode("utf-8", "replace")

    def close(self) -> None:
        self.ws.close()


def insecure_sslopt() -> dict[str, Any]:
    return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}


def close_body(conversation_id: str) -> dict[str, Any]:
    return {
        "conversationId": conversation_id,
        "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
    }


# ---------------------------------------------------------------------- LivePerson's published schemas
def _lenient(node: Any) -> Any:
    """Read "type": "Long" (not a JSON Schema type) as "integer"; leave everything else."""
    if isinstance(node, dict):
        out = {k: _lenient(v) for k, v in node.items()}
        if out.get("type") == "Long":
            out["type"] = "integer"
        return out
    if isinstance(node, list):
        return [_lenient(v) for v in node]
    return node


def schema_check() -> Any:
    """``check(relative schema path, instance)`` asserting the instance is valid, and ``check.problems``.

    The schemas are draft-04 with relative ``$ref``s and non-standard keywords (``readonly``,
    ``"type": "Long"``); they are validated leniently as schemas/README.md advises: unknown
    keywords are ignored and the non-standard type "Long" is read as integer.
    """
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for path in SCHEMAS.rglob("*.json"):
        contents = _lenient(json.loads(path.read_text()))
        resources.append((path.resolve().as_uri(), Resource.from_contents(contents, default_specification=DRAFT4)))
    registry = Registry().with_resources(resources)

    def problems(relative: str, instance: Any) -> list[str]:
        uri = (SCHEMAS / relative).resolve().as_uri()
        validator = jsonschema.Draft4Validator({"$ref": uri}, registry=registry)
        return [e.message for e in validator.iter_errors(instance)]

    def check(relative: str, instance: Any) -> None:
        assert not problems(relative, instance), f"{relative}: {problems(relative, instance)[:5]} for {instance}"

    check.problems = problems  # type: ignore[attr-defined]
    return check
