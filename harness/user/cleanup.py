"""Closing what a failed session left open, through a new connection of the same consumer.

A conversation belongs to its consumer, not to the socket that opened it (docs/emulator.md, "Per
consumer"), so when a session's socket fails after its conversation opened -- a server close
mid-hold, a reset, a lost pong, a broken or late answer to the request, an error answer to the
close -- the user connects again *as the same consumer* and closes it: with its LP token while
that is valid, else with the same identity extended (anonymous: ``anonymous/authorize
{"id_token": old}``) or signed again (external: the same ``sub``). When no answer said which
conversation the request opened, the consumer's conversations are asked for
(``cqm.SubscribeExConversations``: its first push lists them with their state); a close whose
answer does not say it closed (an error code, a broken or late answer) is checked the same way,
and one the server has as closed counts as closed (the first close did it; only its answer was
lost). Tries are bounded (``--lp-cleanup-attempts``) and timed apart by the retry policy, also
while the run stops (``--stop-timeout`` bounds that); a user Locust kills gets one last try.

None of it is a step: only counters (``conversations`` in the summary, with every call the
cleanup made under the ledger's names), so the measured steps stay what the sessions did and a
test can still reconcile them with the ledger.
"""

from __future__ import annotations

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
from harness.protocol.messages import (
    STATE_CLOSE,
    STATE_OPEN,
    MessageType,
    close_conversation_body,
    conversation_states,
)
from harness.protocol.retry import RetryPolicy
from harness.settings import Settings
from harness.user.backoff import TargetGuard, host_of, policy_of
from harness.user.metrics import HarnessMetrics

log = logging.getLogger(__name__)
CLEANUP_TIMEOUT_S: Final = 5.0  # a user being killed (no --stop-timeout) gets one try this long
DISCOVERY_WAIT_S: Final = 1.0  # after the subscription's answer: how long its first push may take
TOKEN_MARGIN_S: Final = 5.0  # an LP token this close to its expiry is renewed before the connect
SUBSCRIBE: Final = MessageType.SUBSCRIBE_EX_CONVERSATIONS
CLOSE: Final = MessageType.UPDATE_CONVERSATION_FIELD


@dataclass
class ConsumerIdentity:
    """Who a session's consumer is, enough to come back as the same one."""

    lp_token: str
    identity_token: str | None = None  # the anonymous identity JWT (extended by anonymous/authorize)
    external_sub: str | None = None  # the external identity's sub (signed again)


@dataclass
class Leftover:
    """A conversation a session may have left open."""

    identity: ConsumerIdentity
    conversation_id: str | None  # None: a request may have opened one, but no answer said which
    first_pause_s: float = 0.0  # the close itself failed: trying it again waits the policy's pause


class _Done(Exception):
    """This try settled the conversation (closed, found closed, or left open for good)."""


class Cleanup:
    """One user's cleanup: it runs in the user's greenlet, between its sessions."""

    def __init__(
        self,
        settings: Settings,
        metrics: HarnessMetrics,
        guard: TargetGuard,
        idp: IdpClient,
        identities: IdentitySource,
        close_http: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # read each time: a stats reset replaces its counters
        self.guard = guard
        self.idp = idp
        self.identities = identities
        self.close_http = close_http
        self.policy: RetryPolicy = policy_of(settings, max_attempts=settings.cleanup_attempts)
        self.socket_host = host_of(settings.socket_url)
        self.idp_host = host_of(settings.idp)

    # ------------------------------------------------------------------ the tries
    def run(self, job: Leftover) -> None:
        """Close ``job``'s conversation, trying up to ``--lp-cleanup-attempts`` times; count the outcome."""
        if self.settings.cleanup_attempts <= 0:
            self._leave(job, "cleanup off")
            return
        self.metrics.conversations.cleanups += 1
        pause, reason = job.first_pause_s, "stopped"
        try:
            for attempt in range(1, self.settings.cleanup_attempts + 1):
                if pause > 0:
                    gevent.sleep(pause)  # also while the run stops: Locust's --stop-timeout bounds it (then _last_try)
                reason = self._attempt(job) or ""
                if not reason:
                    return
                next_pause = self.policy.pause(reason, attempt)
                if next_pause is None:
                    break  # a 4xx is not retried, and the tries are bounded
                pause = next_pause
            self._leave(job, reason)
        except gevent.GreenletExit:
            self._last_try(job)
            raise

    def run_final(self, job: Leftover) -> None:
        """The user is being killed (no ``--stop-timeout``): one bounded try, no pause."""
        if self.settings.cleanup_attempts <= 0:
            self._leave(job, "cleanup off")
            return
        self.metrics.conversations.cleanups += 1
        self._last_try(job)

    def _last_try(self, job: Leftover) -> None:
        """The user is being killed: one bounded try, then it is left open."""
        reason = "stopped"
        try:
            with gevent.Timeout(CLEANUP_TIMEOUT_S):
                reason = self._attempt(job) or ""
        except gevent.Timeout:
            reason = "stopped: timeout"
        if reason:
            self._leave(job, reason)

    def _leave(self, job: Leftover, reason: str) -> None:
        counts = self.metrics.conversations
        if job.conversation_id is None:  # no try learned whether the failed request opened one
            counts.unconfirmed += 1
            return
        counts.left_one(reason)
        log.debug("conversation %s left open: %s", job.conversation_id, reason)

    def _attempt(self, job: Leftover) -> str | None:
        """One try through a new connection: None when settled, else the failure's category."""
        counts = self.metrics.conversations
        counts.cleanup_attempts += 1
        if not self.guard.admit(self.socket_host):
            return "target down"
        notes: gevent.queue.Queue[Notification] = gevent.queue.Queue()
        try:
            sock = self._connect(job, notes.put)
        except Exception as exc:  # typed client failures, the IDP's errors: all categorised
            return self._failed(exc)
        try:
            self._settle(job, sock, notes)
        except _Done:
            return None
        except Exception as exc:
            return self._failed(exc)
        finally:
            self._release(sock)
        return None

    def _failed(self, exc: BaseException) -> str:
        category = categorize(exc)
        self.metrics.conversations.cleanup_failures[category] += 1
        return category

    # ------------------------------------------------------------------ one connection
    def _connect(self, job: Leftover, on_notification: Callable[[Notification], Any]) -> ConsumerSocket:
        """A socket for the consumer: its LP token, renewed first if expired or refused (401/403)."""
        if _expires_in(job.identity.lp_token) < TOKEN_MARGIN_S:
            self._renew(job.identity)
        for renewed in (False, True):
            self._count("connect")
            try:
                sock = ConsumerSocket.connect(
                    self.settings.socket_url,
                    job.identity.lp_token,
                    timeout=self.settings.connect_timeout_s,
                    verify_tls=self.settings.verify_tls,
                    ping_interval=None,  # a short visit: no keepalive
                    request_timeout=self._timeout(),
                    on_notification=on_notification,
                )
            except ClientError as exc:
                self.guard.record(self.socket_host, exc.category)
                if isinstance(exc, HandshakeRejected) and exc.status in (401, 403) and not renewed:
                    self._renew(job.identity)
                    continue
                raise
            self.guard.record(self.socket_host, None)
            return sock
        raise AssertionError("unreachable")

    def _renew(self, identity: ConsumerIdentity) -> None:
        """A new LP token for the same consumer: its identity extended (anonymous) or signed again."""
        try:
            if identity.external_sub is not None:
                auth_code = self.identities.external_token(identity.external_sub)
            else:
                self._count("anonymous-authorize")
                auth_code = self._idp_call(lambda: self.idp.anonymous_authorize(previous=identity.identity_token))
                identity.identity_token = auth_code
            self._count("authenticate")
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

    def _settle(self, job: Leftover, sock: ConsumerSocket, notes: gevent.queue.Queue[Notification]) -> None:
        """Find the conversation if its id is unknown, close it; raise _Done when that settles it."""
        counts = self.metrics.conversations
        if job.conversation_id is None:
            found = sorted(i for i, state in self._states(sock, notes).items() if state == STATE_OPEN)
            if not found:
                raise _Done  # the request never opened one
            job.conversation_id = found[0]  # a consumer has one open conversation at a time
            counts.opened_one()  # opened by the failed request: now known
        self._count(CLOSE)
        try:
            sock.request(CLOSE, close_conversation_body(job.conversation_id), timeout=self._timeout())
        except ClientError as exc:
            if not sock.open or (isinstance(exc, ErrorResponse) and exc.code >= 500):
                raise  # the connection went with it, or the server says it failed: the next try
            state = self._states(sock, notes).get(job.conversation_id)
            if state == STATE_OPEN:
                raise  # still open: the policy decides (a 4xx is not retried: left open, with its code)
            # closed, or not among the consumer's conversations any more: the first close did it
            # (only its answer was lost or late); one the server does not know at all is counted apart
            counts.not_found += state is None and isinstance(exc, ErrorResponse) and exc.code == 404
        counts.closed_one(by_cleanup=True)
        raise _Done

    def _states(self, sock: ConsumerSocket, notes: gevent.queue.Queue[Notification]) -> dict[str, str]:
        """The consumer's conversations and their states: the subscription's first push (none comes
        when the consumer has none, so at most :data:`DISCOVERY_WAIT_S` is spent waiting for it)."""
        self._count(SUBSCRIBE)
        answer = sock.request(SUBSCRIBE, {"convState": [STATE_OPEN, STATE_CLOSE]}, timeout=self._timeout())
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

    def _release(self, sock: ConsumerSocket) -> None:
        if sock.open:
            try:
                with gevent.Timeout(CLEANUP_TIMEOUT_S):
                    sock.close(timeout=self._timeout())
            except (gevent.Timeout, ClientError):
                sock.abort("cleanup close timed out")

    # ------------------------------------------------------------------ helpers
    def _timeout(self) -> float:
        return self.settings.request_timeout_s

    def _count(self, call: str) -> None:
        self.metrics.conversations.cleanup_calls[call] += 1


def _expires_in(lp_token: str) -> float:
    """Seconds the LP token is still valid, read from its own ``exp`` (no signature check needed)."""
    try:
        exp = tokens.unverified_claims(lp_token).get("exp")
    except tokens.TokenError:
        return float("inf")  # not a JWT we can read: let the server say
    return expires_in(float(exp), time.time()) if isinstance(exp, int | float) else float("inf")
