"""Message type names, response codes and conversation bodies of the consumer API (close codes: closing.py).

Every name here comes from ``docs/lp-protocol.md`` (section 3) or the published
schemas; where the docs are silent (e.g. the GetClock response type) the choice is marked.
"""

from __future__ import annotations

from enum import IntEnum
from http import HTTPStatus
from typing import Final


class MessageType:
    """Request, response and notification ``type`` values on the consumer socket."""

    # requests (consumer -> server)
    REQUEST_CONVERSATION: Final = "cm.ConsumerRequestConversation"
    UPDATE_CONVERSATION_FIELD: Final = "cm.UpdateConversationField"
    PUBLISH_EVENT: Final = "ms.PublishEvent"
    SUBSCRIBE_MESSAGING_EVENTS: Final = "ms.SubscribeMessagingEvents"
    SUBSCRIBE_EX_CONVERSATIONS: Final = "cqm.SubscribeExConversations"
    UNSUBSCRIBE_EX_CONVERSATIONS: Final = "cqm.UnsubscribeExConversations"
    GET_CLOCK: Final = "GetClock"
    KEEP_ALIVE: Final = "KeepAlive"
    INIT_CONNECTION: Final = "InitConnection"
    # Connector API examples only (lp-protocol.md 3.3): some clients set a profile before the conversation.
    SET_USER_PROFILE: Final = "userprofile.SetUserProfile"
    GET_USER_PROFILE: Final = "userprofile.GetUserProfile"

    # responses (server -> consumer)
    REQUEST_CONVERSATION_RESPONSE: Final = "cm.RequestConversationResponse"
    PUBLISH_EVENT_RESPONSE: Final = "ms.PublishEventResponse"
    GENERIC_SUBSCRIBE_RESPONSE: Final = "GenericSubscribeResponse"
    SUBSCRIBE_EX_CONVERSATIONS_RESPONSE: Final = "cqm.SubscribeExConversationsResponse"
    STRING_RESPONSE: Final = ".ReqBody$StringResp"
    # Not documented (lp-protocol.md section 4.5): our choice for the GetClock answer.
    GET_CLOCK_RESPONSE: Final = "GetClockResponse"
    # Not documented either (the schema files were not published with the docs): our choice.
    GET_USER_PROFILE_RESPONSE: Final = "userprofile.GetUserProfileResponse"

    # notifications (server -> consumer)
    MESSAGING_EVENT_NOTIFICATION: Final = "ms.MessagingEventNotification"
    EX_CONVERSATION_CHANGE_NOTIFICATION: Final = "cqm.ExConversationChangeNotification"

    CONSUMER_REQUESTS: Final = frozenset(
        {
            REQUEST_CONVERSATION,
            UPDATE_CONVERSATION_FIELD,
            PUBLISH_EVENT,
            SUBSCRIBE_MESSAGING_EVENTS,
            SUBSCRIBE_EX_CONVERSATIONS,
            UNSUBSCRIBE_EX_CONVERSATIONS,
            GET_CLOCK,
            KEEP_ALIVE,
            INIT_CONNECTION,
            SET_USER_PROFILE,
            GET_USER_PROFILE,
        }
    )


_RESPONSE_TYPES: Final = {
    MessageType.REQUEST_CONVERSATION: MessageType.REQUEST_CONVERSATION_RESPONSE,
    MessageType.PUBLISH_EVENT: MessageType.PUBLISH_EVENT_RESPONSE,
    MessageType.SUBSCRIBE_MESSAGING_EVENTS: MessageType.GENERIC_SUBSCRIBE_RESPONSE,
    MessageType.SUBSCRIBE_EX_CONVERSATIONS: MessageType.SUBSCRIBE_EX_CONVERSATIONS_RESPONSE,
    MessageType.GET_CLOCK: MessageType.GET_CLOCK_RESPONSE,
    MessageType.GET_USER_PROFILE: MessageType.GET_USER_PROFILE_RESPONSE,
}


def response_type_for(request_type: str) -> str:
    """The response ``type`` the server sends for a request type (StringResp by default)."""
    return _RESPONSE_TYPES.get(request_type, MessageType.STRING_RESPONSE)


# Conversation state values (cm/types/StateChange.json: CLOSE is the only enum the consumer sends).
CONVERSATION_STATE_FIELD: Final = "ConversationStateField"
# Multi-dialog clients close the MAIN dialog instead (the PCS tutorial): {"field": "DialogChange",
# "type": "UPDATE", "dialog": {"dialogId": <the conversation id>, "state": "CLOSE", "closedCause": ...}}.
DIALOG_CHANGE_FIELD: Final = "DialogChange"
STATE_CLOSE: Final = "CLOSE"
STATE_OPEN: Final = "OPEN"


class Code(IntEnum):
    """Response ``code`` values: HTTP semantics (lp-protocol.md 3.4)."""

    OK = HTTPStatus.OK
    BAD_REQUEST = HTTPStatus.BAD_REQUEST
    UNAUTHORIZED = HTTPStatus.UNAUTHORIZED
    FORBIDDEN = HTTPStatus.FORBIDDEN
    NOT_FOUND = HTTPStatus.NOT_FOUND
    CONFLICT = HTTPStatus.CONFLICT
    TOO_MANY_REQUESTS = HTTPStatus.TOO_MANY_REQUESTS
    INTERNAL_ERROR = HTTPStatus.INTERNAL_SERVER_ERROR
    SERVICE_UNAVAILABLE = HTTPStatus.SERVICE_UNAVAILABLE


def close_conversation_body(conversation_id: str) -> dict[str, object]:
    """The body of ``cm.UpdateConversationField`` that closes a conversation (REF-CLOSE)."""
    return {
        "conversationId": conversation_id,
        "conversationField": [{"field": CONVERSATION_STATE_FIELD, "conversationState": STATE_CLOSE}],
    }


def closed_conversation_id(body: object) -> str | None:
    """The conversation id a close request names, or None if the body is not a close request."""
    if not isinstance(body, dict):
        return None
    conversation_id = body.get("conversationId")
    fields = body.get("conversationField")
    if isinstance(fields, dict):  # a single-element array may be sent bare (lp-protocol.md 3.2)
        fields = [fields]
    if not isinstance(conversation_id, str) or not isinstance(fields, list):
        return None
    for item in fields:
        if not isinstance(item, dict):
            continue
        if item.get("field") == CONVERSATION_STATE_FIELD and item.get("conversationState") == STATE_CLOSE:
            return conversation_id
        dialog = item.get("dialog")
        if (
            item.get("field") == DIALOG_CHANGE_FIELD
            and isinstance(dialog, dict)
            and dialog.get("state") == STATE_CLOSE
            and dialog.get("dialogId", conversation_id) == conversation_id  # the MAIN dialog's id is the conversation's
        ):
            return conversation_id
    return None


# InitConnection header types (infra/consumerAuthenticationHeader.json, clientPropertiesHeader.json).
CONSUMER_AUTHENTICATION_HEADER: Final = ".ams.headers.ConsumerAuthentication"
CLIENT_PROPERTIES_HEADER: Final = ".ams.headers.ClientProperties"


def init_connection_headers(token: str, client_properties: dict[str, object] | None = None) -> list[dict[str, object]]:
    """The ``headers`` of ``InitConnection``: the header-less flow's credential, as browsers send it (T-HDR)."""
    headers: list[dict[str, object]] = []
    if client_properties:
        headers.append({"type": CLIENT_PROPERTIES_HEADER, **client_properties})
    headers.append({"type": CONSUMER_AUTHENTICATION_HEADER, "jwt": token})
    return headers


def token_of_init_connection(headers: object) -> str | None:
    """The LP token an ``InitConnection``'s headers carry (a bare header is read as a list of one), or None."""
    token = None
    for header in headers if isinstance(headers, list) else [headers]:
        if isinstance(header, dict) and "ConsumerAuthentication" in str(header.get("type", "")):
            token = header.get("jwt")
    return token if isinstance(token, str) and token else None


def conversation_id_of(body: object) -> str | None:
    """The ``conversationId`` of a RequestConversationResponse body, or None if absent."""
    if isinstance(body, dict):
        value = body.get("conversationId")
        if isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return None


def conversation_states(body: object) -> dict[str, str]:
    """Conversation id -> state (OPEN, CLOSE) in an ``ExConversationChangeNotification`` body."""
    found: dict[str, str] = {}
    changes = body.get("changes") if isinstance(body, dict) else None
    for change in changes if isinstance(changes, list) else ():
        result = change.get("result") if isinstance(change, dict) else None
        if not isinstance(result, dict) or change.get("type", "UPSERT") != "UPSERT":
            continue
        details = result.get("conversationDetails")
        conv_id = result.get("convId")
        if isinstance(conv_id, str) and isinstance(details, dict) and isinstance(details.get("state"), str):
            found[conv_id] = details["state"]
    return found
