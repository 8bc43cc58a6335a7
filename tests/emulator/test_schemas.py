"""The emulator's response and notification frames against LivePerson's published JSON Schemas.

The schemas are draft-04 with relative ``$ref``s and non-standard keywords (``readonly``,
``"type": "Long"``); they are validated leniently as schemas/README.md advises: unknown
keywords are ignored and the non-standard type "Long" is read as integer.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.helpers import SCHEMAS, Client, close_body, lp_token, schema_check

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

pytestmark = pytest.mark.skipif(
    not (SCHEMAS / "ws" / "consumerResponses.json").is_file(),
    reason=f"LivePerson's schemas are not at {SCHEMAS} (../shared/reference/schemas from the repo root)",
)


@pytest.fixture(scope="module")
def validate() -> Any:
    return schema_check()


def test_responses_and_notifications_match_the_schemas(emu, validate) -> None:
    token = lp_token(emu.url)
    client = Client(emu.url, token)
    watcher = Client(emu.url, token)
    sub = watcher.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
    validate("ws/consumerResponses.json", sub)
    validate("infra/resp.json", sub)
    first = watcher.recv_json()  # the subscription's first notification, with no conversation yet
    validate("ws/consumerNotifications.json", first)
    validate("aam/subscribeExConversationsNotification.json", first["body"])
    assert first["body"]["changes"] == []

    created = client.request("cm.ConsumerRequestConversation")
    validate("ws/consumerResponses.json", created)
    validate("cm/consumerRequestConversationResp.json", created["body"])
    conv = created["body"]["conversationId"]
    upsert = watcher.recv_json()
    validate("ws/consumerNotifications.json", upsert)
    validate("aam/subscribeExConversationsNotification.json", upsert["body"])

    subscribed = client.request("ms.SubscribeMessagingEvents", {"fromSeq": 0, "dialogId": conv})
    validate("types/genericSubscribeResp.json", subscribed)
    published = client.request(
        "ms.PublishEvent",
        {"dialogId": conv, "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hello"}},
    )
    validate("ms/PublishEventSuccess.json", published)
    validate("ws/consumerResponses.json", published)
    event_note = client.recv_json()
    validate("ws/consumerNotifications.json", event_note)
    validate("ms/messagingEventNotification.json", event_note["body"])

    closed = client.request("cm.UpdateConversationField", close_body(conv))
    validate("infra/stringResp.json", closed)
    validate("ws/consumerResponses.json", closed)
    validate("ws/consumerNotifications.json", watcher.recv_json())

    for frame in (
        client.request("GetClock"),
        client.request("KeepAlive"),
        client.request("cm.NoSuchThing"),
        client.request("cm.ConsumerRequestConversation", "not an object"),
    ):
        validate("infra/resp.json", frame)
    client.ws.send("{broken")
    error = client.recv_json()
    validate("infra/stringResp.json", error)
    validate("ws/consumerResponses.json", error)
    client.close()
    watcher.close()


def test_the_validation_is_not_vacuous(validate) -> None:
    """Our close body matches; a response without reqId or with a bad body does not."""
    validate("cm/updateConversationFieldBody.json", close_body("abc"))
    assert validate.problems("infra/resp.json", {"kind": "resp", "code": 200, "type": "x", "body": {}})
    bad = {"kind": "resp", "reqId": "1", "code": 200, "type": "cm.RequestConversationResponse", "body": {}}
    assert validate.problems("cm/consumerRequestConversationResp.json", bad["body"])
    assert validate.problems("infra/stringResp.json", {**bad, "body": {"not": "a string"}})
