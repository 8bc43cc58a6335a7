"""Coming back as the same consumer through a new connection: the way in for the cleanup and the reconnects.

A conversation belongs to its consumer, not to the socket that opened it (docs/emulator.md, "Per
consumer"), so a new socket of the same consumer can find it and close it (the cleanup) or carry
on with it (a reconnect). The consumer connects with its LP token while that is valid, else with
the same identity extended (anonymous: ``anonymous/authorize {"id_token": old}``) or signed again
(external: the same ``sub``), and learns its conversations from ``cqm.SubscribeExConversations``
(its first push lists them with their state).

None of these calls is a step: each is counted under the ledger's name through the ``count``
callable its caller passes, so the steps stay what the sessions did and a test can still
reconcile steps + these calls with the ledger.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import gevent
import gevent.queue

from harness.client.errors import ClientError, ErrorResponse, HandshakeRejected, categorize
from harness.client.idp import IdentitySource, IdpClient
from harness.client.socket import ConsumerSocket
from harness.protocol import Notification, tokens
from harness.protocol.keepalive import expires_in
from harness.protocol.messages import STATE_CLOSE, STATE_OPEN, MessageType, conversation_states
from harness.settings import Settings
from harness.user.backoff import TargetGuard, host_of
from harness.user.journey import open_socket

log = logging.getLogger(__name__)
Count = Callable[[str], None]  # counts one call under its ledger target name
CLOSE_TIMEOUT_S: Final = 5.0  # closing a visit's socket: no longer than this
DISCOVERY_WAIT_S: Final = 1.0  # after the subscription's answer: how long its first push may take
TOKEN_MARGIN_S: Final = 5.0  # a token this close to its expiry is renewed before it is used
SUBSCRIBE: Final = MessageType.SUBSCRIBE_EX_CONVERSATIONS


@dataclass
class ConsumerIdentity:
    """Who a session's consumer is, enough to come back as the same one."""

    lp_token: str
    identity_token: str | None = None  # the anonymous identity JWT (extended by anonymous/authorize)
    external_sub: str | None = None  # the external identity's sub (signed again)


class Revisit:
    """One user's way back to its consumer: connect (renewing the token when needed) and look around."""

    def __init__(
        self,
        settings: Settings,
        guard: TargetGuard,
        idp: IdpClient,
        identities: IdentitySource,
        close_http: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.idp = idp
        self.identities = identities
        self.close_http = close_http
        self.socket_host = host_of(settings.socket_url)
        self.idp_host = host_of(settings.idp)

    def connect(
        self, identity: ConsumerIdentity, count: Count, *, renewed: bool = False, **options: Any
    ) -> ConsumerSocket:
        """A socket for the consumer: its LP token, renewed first if expiring or refused (401/403).

        ``renewed``: the token was renewed just now, so it is used as it is, however short it
        lives. ``options`` are :meth:`ConsumerSocket.connect`'s socket keywords (pings, callbacks).
        """
        if not renewed and seconds_left(identity.lp_token) < TOKEN_MARGIN_S:
            self.renew(identity, count)
            renewed = True
        for retried in (False, True):
            count("connect")
            try:
                sock = open_socket(
                    self.settings, identity.lp_token, request_timeout=self.settings.request_timeout_s, **options
                )
            except ClientError as exc:
                self.guard.record(self.socket_host, exc.category)
                refused = (isinstance(exc, HandshakeRejected) and exc.status in (401, 403)) or (
                    isinstance(exc, ErrorResponse) and exc.code in (401, 403)  # InitConnection's answer
                )
                if refused and not (renewed or retried):
                    self.renew(identity, count)
                    continue
                raise
            self.guard.record(self.socket_host, None)
            return sock
        raise AssertionError("unreachable")

    def renew(self, identity: ConsumerIdentity, count: Count, *, extend: bool = True) -> None:
        """A new LP token for the same consumer: its identity extended (anonymous) or signed again.

        ``extend=False`` (after a 4401) authenticates again with the identity token as it is,
        unless that has expired too.
        """
        try:
            if identity.external_sub is not None:
                auth_code = self.identities.external_token(identity.external_sub)
            else:
                auth_code = identity.identity_token or ""
                if extend or seconds_left(auth_code) < TOKEN_MARGIN_S:
                    count("anonymous-authorize")
                    auth_code = self._idp_call(lambda: self.idp.anonymous_authorize(previous=identity.identity_token))
                    identity.identity_token = auth_code
            count("authenticate")
            identity.lp_token = self._idp_call(lambda: self.idp.authenticate(auth_code))
        finally:
            self.close_http()

    def _idp_call(self, call: Callable[[], str]) -> str:
        try:
            token = call()
        except Exception as exc:
            self.guard.record(self.idp_host, categorize(exc))
            raise
        self.guard.record(self.idp_host, None)
        return token

    def states(self, sock: ConsumerSocket, notes: gevent.queue.Queue[Notification], count: Count) -> dict[str, str]:
        """The consumer's conversations and their states: the subscription's first push (none comes
        when the consumer has none, so at most :data:`DISCOVERY_WAIT_S` is spent waiting for it).

        ``notes`` is the queue the socket's ``on_notification`` puts into."""
        count(SUBSCRIBE)
        timeout = self.settings.request_timeout_s
        answer = sock.request(SUBSCRIBE, {"convState": [STATE_OPEN, STATE_CLOSE]}, timeout=timeout)
        sub_id = answer.body.get("subscriptionId") if isinstance(answer.body, dict) else None
        deadline = time.monotonic() + DISCOVERY_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                note = notes.get(timeout=left)
            except gevent.queue.Empty:
                break
            body = note.body if isinstance(note.body, dict) else {}
            if note.type == MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION and body.get("subscriptionId") in (
                sub_id,
                None,
            ):
                return conversation_states(body)
        return {}

    def release(self, sock: ConsumerSocket) -> None:
        """Close a visit's socket within :data:`CLOSE_TIMEOUT_S`, else tear it down."""
        close_within(sock, CLOSE_TIMEOUT_S, close_timeout=self.settings.request_timeout_s)


_slow_closes = itertools.count(1)


def close_within(sock: ConsumerSocket, timeout_s: float, *, close_timeout: float | None = None) -> None:
    """Close ``sock`` cleanly within ``timeout_s``, else tear it down; a kill during the close tears it down too.

    A slow close is said once, then every 1,000th: thousands of users stopping at once must not
    flood the log.
    """
    if not sock.open:
        return
    try:
        with gevent.Timeout(timeout_s):
            sock.close(timeout=close_timeout if close_timeout is not None else timeout_s)
    except (gevent.Timeout, ClientError):
        sock.abort("close timed out")
        n = next(_slow_closes)
        if n == 1 or n % 1000 == 0:
            log.warning("%d socket close(s) did not finish in %.0f s (the socket is torn down anyway)", n, timeout_s)
    except gevent.GreenletExit:
        sock.abort("stopped")
        raise


def expires_at(jwt: str) -> float:
    """When a token expires, read from its own ``exp`` (no signature check needed); inf if unreadable."""
    try:
        exp = tokens.unverified_claims(jwt).get("exp")
    except tokens.TokenError:
        return float("inf")  # not a JWT we can read: let the server say
    return float(exp) if isinstance(exp, int | float) else float("inf")


def seconds_left(jwt: str) -> float:
    """Seconds a token is still valid (inf when it says nothing)."""
    return expires_in(expires_at(jwt), time.time())
