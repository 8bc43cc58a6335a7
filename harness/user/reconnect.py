"""Reconnecting like a real client: a socket lost mid-hold comes back as the same consumer, on its conversation.

With ``--lp-on-drop reconnect`` a hold whose socket ends early (a server close, a reset, a lost
pong) is not the end of the session: the consumer waits briefly (``--lp-reconnect-delay``,
jittered, doubling per try; a 429 or 5xx waits the retry policy's pause when that is longer),
renews what the close code says to renew (:func:`harness.protocol.closing.recovery_for`: 4401
authenticate again, 4407 extend the identity first), connects again and finds its conversation
among its own (``cqm.SubscribeExConversations``); open, the hold goes on on the new socket. Up to
``--lp-reconnect-attempts`` tries per drop; then the session is lost (it fails with the drop's
category, and what it left open goes to the cleanup).

``--lp-token-refresh S`` renews an LP token S seconds before it would expire mid-hold and moves
the hold to a new socket with the new token before the server closes the old one.

The tries are not steps: the one ``reconnect`` step times each drop until the conversation is
resumed (or lost), and every call the tries make is counted under its ledger name in the
summary's ``reconnect`` section, so steps + these calls still reconcile with the ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import gevent
import gevent.event
import gevent.queue

from harness.client.errors import CloseInfo, categorize
from harness.client.socket import ConsumerSocket
from harness.protocol import Notification
from harness.protocol.closing import Recovery, recovery_for
from harness.protocol.messages import STATE_OPEN
from harness.protocol.retry import RetryPolicy, reconnect_delay
from harness.settings import Settings
from harness.user.backoff import retry_after_of
from harness.user.metrics import HarnessMetrics
from harness.user.revisit import ConsumerIdentity, Revisit, seconds_left
from harness.user.steps import Step, StepFailed, StepReporter

log = logging.getLogger(__name__)
GONE: Final = "conversation gone"  # the consumer's conversation is no longer open after a reconnect
STOPPED: Final = "stopped"  # the run's end cut the reconnect short: an interrupt, not a loss
_warned_short = False  # said once per process: the LP tokens live too short for --lp-token-refresh


class Lost(Exception):
    """No try brought the consumer back on its conversation."""

    def __init__(self, category: str) -> None:
        super().__init__(category)
        self.category = category


class Reconnector:
    """One user's reconnects: it runs in the user's greenlet, inside the hold."""

    def __init__(
        self,
        settings: Settings,
        metrics: Callable[[], HarnessMetrics],
        revisit: Revisit,
        steps: StepReporter,
        policy: RetryPolicy,
        stopping: gevent.event.Event,
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # called each time: a stats reset replaces the counters
        self.revisit = revisit
        self.steps = steps
        self.policy = policy
        self.stopping = stopping

    @property
    def on(self) -> bool:
        return self.settings.on_drop == "reconnect"

    def refresh_due(self, identity: ConsumerIdentity, *, renewed: bool = False) -> float | None:
        """Seconds until the LP token must be renewed mid-hold (``--lp-token-refresh``), or None.

        ``renewed``: the token was just renewed; one that would be due again within the setting
        itself lives too short for it, and renewing it again and again would storm the IDP.
        """
        ahead = self.settings.token_refresh_s
        left = seconds_left(identity.lp_token)
        if ahead <= 0 or left == float("inf"):
            return None
        due = max(0.0, left - ahead)
        if renewed and due < ahead:
            global _warned_short
            if not _warned_short:
                _warned_short = True
                log.warning(
                    "LP tokens live %.0f s, too short for --lp-token-refresh %g: not renewed mid-hold again "
                    "(set it below half their lifetime)",
                    left,
                    ahead,
                )
            return None
        return due

    def recover(
        self, info: CloseInfo, identity: ConsumerIdentity, conversation_id: str, options: dict[str, Any]
    ) -> ConsumerSocket:
        """Back on ``conversation_id`` after the socket ended with ``info``; :class:`Lost` if not.

        ``options``: the new socket's keywords (the session's keepalive and its callbacks).
        """
        self.metrics().reconnect.drops += 1
        start_time, started = time.time(), time.perf_counter()
        recovery = recovery_for(info.code if info.kind == "server" else None)
        failure: str | None = None
        retry_after: float | None = None
        for attempt in range(1, self.settings.reconnect_attempts + 1):
            pause = self._pause(attempt, failure, retry_after)
            if pause is None or self.stopping.wait(pause):
                break  # not worth another try (a 4xx), or the run is stopping
            self.metrics().reconnect.reconnects += 1
            try:
                sock = self._try(identity, conversation_id, options, recovery)
            except Lost as gone:
                failure = gone.category
                break  # the conversation is no longer open: nothing to resume
            except Exception as exc:  # typed client failures, the IDP's errors: all categorised
                failed = StepFailed(Step.RECONNECT, categorize(exc), exc)
                failure, retry_after = failed.category, retry_after_of(failed)
                self.metrics().reconnect.failures[failure] += 1
                continue
            self.metrics().reconnect.recovered += 1
            self.steps.report(Step.RECONNECT, (time.perf_counter() - started) * 1000.0, start_time=start_time)
            return sock
        if self.stopping.is_set():  # the run stopped mid-reconnect: not a measurement, not a loss
            self.metrics().reconnect.interrupted += 1
            raise Lost(STOPPED)
        self.metrics().reconnect.lost += 1
        self.steps.report(
            Step.RECONNECT,
            (time.perf_counter() - started) * 1000.0,
            start_time=start_time,
            exception=StepFailed(Step.RECONNECT, failure or "no tries"),
        )
        raise Lost(info.category or "dropped")

    def refresh(self, identity: ConsumerIdentity, conversation_id: str, options: dict[str, Any]) -> ConsumerSocket:
        """A new LP token before the old one expires, and a new socket on the same conversation.

        The caller closes the old socket once this returns; a failure here raises, and the old
        socket carries on until the server closes it (then :meth:`recover` applies).
        """
        self.metrics().reconnect.refreshes += 1
        try:
            return self._try(identity, conversation_id, options, Recovery.REAUTHENTICATE)
        except Lost as gone:
            self.metrics().reconnect.failures[gone.category] += 1
            raise
        except Exception as exc:
            self.metrics().reconnect.failures[categorize(exc)] += 1
            raise

    def _try(
        self, identity: ConsumerIdentity, conversation_id: str, options: dict[str, Any], recovery: Recovery
    ) -> ConsumerSocket:
        """One try: renew as ``recovery`` says, connect, find the conversation open."""
        count = self._count
        renew = recovery is not Recovery.RECONNECT
        if renew:
            self.revisit.renew(identity, count, extend=recovery is Recovery.EXTEND_IDENTITY)
        notes: gevent.queue.Queue[Notification] = gevent.queue.Queue()
        sock = self.revisit.connect(identity, count, renewed=renew, on_notification=notes.put, **options)
        try:
            state = self.revisit.states(sock, notes, count).get(conversation_id)
        except BaseException:
            self.revisit.release(sock)
            raise
        sock.on_notification = None  # the conversation is found: later pushes are not read
        if state != STATE_OPEN:
            self.revisit.release(sock)
            raise Lost(GONE)
        return sock

    def _pause(self, attempt: int, failure: str | None, retry_after: float | None) -> float | None:
        """Before try ``attempt``: the reconnect delay, or the retry policy's pause when longer; None: stop."""
        delay = reconnect_delay(attempt, self.settings.reconnect_delay_s, self.settings.backoff_cap_s)
        if failure is None:
            return delay
        told = self.policy.pause(failure, attempt - 1, retry_after=retry_after)
        return None if told is None else max(delay, told)

    def _count(self, call: str) -> None:
        self.metrics().reconnect.calls[call] += 1
