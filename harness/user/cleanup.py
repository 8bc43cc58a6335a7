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
from dataclasses import dataclass
from typing import Final

import gevent
import gevent.queue

from harness.client.errors import ClientError, ErrorResponse, categorize
from harness.client.socket import ConsumerSocket
from harness.protocol import Notification
from harness.protocol.messages import STATE_OPEN, MessageType, close_conversation_body
from harness.protocol.retry import RetryPolicy
from harness.settings import Settings
from harness.user.backoff import TargetGuard, policy_of
from harness.user.metrics import HarnessMetrics
from harness.user.revisit import ConsumerIdentity, Revisit

log = logging.getLogger(__name__)
CLEANUP_TIMEOUT_S: Final = 5.0  # a user being killed (no --stop-timeout) gets one try this long
CLOSE: Final = MessageType.UPDATE_CONVERSATION_FIELD


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

    def __init__(self, settings: Settings, metrics: HarnessMetrics, guard: TargetGuard, revisit: Revisit) -> None:
        self.settings = settings
        self.metrics = metrics  # read each time: a stats reset replaces its counters
        self.guard = guard
        self.revisit = revisit
        self.policy: RetryPolicy = policy_of(settings, max_attempts=settings.cleanup_attempts)

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
        if not self.guard.admit(self.revisit.socket_host):
            return "target down"
        notes: gevent.queue.Queue[Notification] = gevent.queue.Queue()
        try:
            # a short visit: no keepalive
            sock = self.revisit.connect(job.identity, self._count, ping_interval=None, on_notification=notes.put)
        except Exception as exc:  # typed client failures, the IDP's errors: all categorised
            return self._failed(exc)
        try:
            self._settle(job, sock, notes)
        except _Done:
            return None
        except Exception as exc:
            return self._failed(exc)
        finally:
            self.revisit.release(sock)
        return None

    def _failed(self, exc: BaseException) -> str:
        category = categorize(exc)
        self.metrics.conversations.cleanup_failures[category] += 1
        return category

    # ------------------------------------------------------------------ one connection
    def _settle(self, job: Leftover, sock: ConsumerSocket, notes: gevent.queue.Queue[Notification]) -> None:
        """Find the conversation if its id is unknown, close it; raise _Done when that settles it."""
        counts = self.metrics.conversations
        if job.conversation_id is None:
            found = sorted(i for i, state in self.revisit.states(sock, notes, self._count).items() if state == STATE_OPEN)
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
            state = self.revisit.states(sock, notes, self._count).get(job.conversation_id)
            if state == STATE_OPEN:
                raise  # still open: the policy decides (a 4xx is not retried: left open, with its code)
            # closed, or not among the consumer's conversations any more: the first close did it
            # (only its answer was lost or late); one the server does not know at all is counted apart
            counts.not_found += state is None and isinstance(exc, ErrorResponse) and exc.code == 404
        counts.closed_one(by_cleanup=True)
        raise _Done

    # ------------------------------------------------------------------ helpers
    def _timeout(self) -> float:
        return self.settings.request_timeout_s

    def _count(self, call: str) -> None:
        self.metrics.conversations.cleanup_calls[call] += 1

