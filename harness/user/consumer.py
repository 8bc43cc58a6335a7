"""The consumer user: the tutorial's whole sequence, one session after another.

anonymous-authorize -> authenticate -> connect -> request-conversation -> hold (pings)
-> close-conversation -> close socket; then a new session with a new identity (``--lp-consumer
returning``: the same identity, extended at the IDP). ``--lp-session realistic`` looks for an OPEN
conversation first and ``--lp-auth`` / ``--lp-keepalive`` connect and keep alive as browsers do
(:mod:`harness.user.journey`); ``--lp-messages`` makes the hold a conversation
(:mod:`harness.user.talk`).

Each step is timed and reported by :class:`~harness.user.steps.StepReporter`; each session fails
at most once, in the phase where it failed, with one category (:mod:`harness.user.metrics`).
A failed session pauses the user per the retry policy, every call waits while its host's circuit
breaker is open (:mod:`harness.user.backoff`), and a conversation a failed socket left open is
closed through a new connection of the same consumer (:mod:`harness.user.cleanup`). With
``--lp-on-drop reconnect`` a socket lost mid-hold comes back on the same conversation
(:mod:`harness.user.reconnect`).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gevent
from locust import User, task
from locust.contrib.fasthttp import FastHttpSession

from harness.client.errors import ClientError, ErrorResponse, categorize
from harness.client.idp import IdentitySource, IdpClient
from harness.client.keepalive import install_keepalive_check
from harness.client.proxy import http_session_options
from harness.client.resolver import install_numeric_fast_path
from harness.client.socket import ConsumerSocket
from harness.client.transport import install_route
from harness.protocol.messages import MessageType, close_conversation_body, conversation_id_of
from harness.user import arrival, journey
from harness.user.backoff import UserBackoff, guard_of, host_of, policy_of, retry_after_of
from harness.user.cleanup import CLEANUP_TIMEOUT_S, Cleanup, Leftover
from harness.user.reconnect import STOPPED, Lost, Reconnector
from harness.user.revisit import ConsumerIdentity, Revisit, close_within
from harness.user.state import metrics_of, settings_of, stopping_event
from harness.user.steps import Step, StepFailed, StepReporter
from harness.user.talk import Activity

log = logging.getLogger(__name__)
STOP_CLOSE_FACTOR = 3.0  # once the test is stopping every user closes at once: closes get 3x the request timeout
_user_numbers = itertools.count(1)
install_keepalive_check()  # the token phase reuses its connection past 1,024 open sockets


@dataclass
class _Conversation:
    """What this session's conversation is known to be, so that nothing it opened goes unaccounted."""

    sock: ConsumerSocket | None = None  # the socket it is held on (a reconnect replaces it)
    id: str | None = None
    requested: bool = False  # the request was sent and no answer settled it: one may be open
    closing: bool = False  # the close was sent, its answer not read yet
    settled: bool = False  # closed (confirmed), or handed over to the cleanup

    def leftover(self) -> bool:
        return not self.settled and (self.id is not None or self.requested)


class ConsumerUser(User):
    """One simulated consumer running the unauthenticated messaging flow in a loop."""

    def __init__(self, environment) -> None:
        super().__init__(environment)
        install_numeric_fast_path()  # an IP-literal IDP host: no thread-pool hop per connection
        self.settings = settings_of(environment)
        self.metrics = metrics_of(environment)
        self.steps = StepReporter(environment.events.request)
        self.number = next(_user_numbers)
        self.identities = IdentitySource(self.settings, user_tag=f"{os.getpid()}-{self.number}")
        idp_proxy = install_route(self.settings).proxy_for(self.settings.idp)  # proxy, source addresses: docs/scale-out.md
        self.http = FastHttpSession(
            self.settings.idp,
            request_event=environment.events.request,  # unused: StepReporter reports every step
            user=self,
            insecure=not self.settings.verify_tls,
            network_timeout=self.settings.http_timeout_s,
            connection_timeout=self.settings.http_timeout_s,
            max_retries=0,
            **http_session_options(idp_proxy),
        )
        self.idp = IdpClient(self.http, self.settings.account, idp_proxy)
        self.backoff = UserBackoff(policy_of(self.settings), self.metrics)
        self.guard = guard_of(environment)
        self.idp_host, self.socket_host = host_of(self.settings.idp), host_of(self.settings.socket_url)
        revisit = Revisit(self.settings, self.guard, self.idp, self.identities, lambda: self.http.client.close())
        self.cleanup = Cleanup(self.settings, self.metrics, self.guard, revisit)
        self.reconnector = Reconnector(
            self.settings, lambda: self.metrics, revisit, self.steps, self.backoff.policy, stopping_event(environment)
        )
        self.returning: ConsumerIdentity | None = None  # --lp-consumer returning: who comes back next session
        self.arrivals = arrival.UserArrivals(environment, self.settings.arrival_rate is not None)  # the open model

    def wait_time(self) -> float:
        """The think time, or longer: a failed session's pause per the retry policy (RETRY); in the open
        model (``--lp-arrival-rate``), until this user's next arrival instead (:mod:`harness.user.arrival`)."""
        if self.arrivals.on:
            return self.arrivals.wait()
        return max(self.settings.think_time_s, self.backoff.remaining())

    @task
    def session(self) -> None:
        """One session: the token phase, then the socket phase; a failure ends the session."""
        if not self.arrivals.admitted():
            return  # the open model: no arrival for this user yet (its wait_time waits for one)
        started = time.perf_counter()
        consumer = self._token_phase()
        if consumer is not None and not stopping_event(self.environment).is_set():
            self._socket_phase(consumer, started)

    @contextmanager
    def _call(self, step: str, host: str) -> Iterator[None]:
        """A timed step that is also an attempt on ``host``: its outcome feeds that host's breaker."""
        try:
            with self.steps.measure(step, categorize):
                yield
        except StepFailed as failure:
            self.guard.record(host, failure.category)
            raise
        self.guard.record(host, None)

    def _failed(self, phase: str, failure: StepFailed) -> None:
        """A failed session: counted once, in its phase; the user pauses per the policy before the next."""
        self.metrics.fail_phase(phase, failure.category)
        self.backoff.failed(failure.category, retry_after_of(failure))

    # ------------------------------------------------------------------ token phase
    def _token_phase(self) -> ConsumerIdentity | None:
        if not self.guard.admit(self.idp_host):
            return None  # the run stopped while the IDP was down
        self.metrics.start_phase("token")
        known = self.returning
        try:
            sub = None
            if self.identities.anonymous:
                with self._call(Step.ANONYMOUS_AUTHORIZE, self.idp_host):  # a returning consumer's is extended
                    auth_code = self.idp.anonymous_authorize(previous=known.identity_token if known else None)
            else:
                sub = known.external_sub if known else self.identities.new_external_sub()
                auth_code = self.identities.external_token(sub)
            with self._call(Step.AUTHENTICATE, self.idp_host):
                lp_token = self.idp.authenticate(auth_code)
            consumer = ConsumerIdentity(lp_token, auth_code if sub is None else None, sub)
            if self.settings.consumer == "returning":
                self.returning = consumer
            return consumer
        except StepFailed as failure:
            if known is not None and failure.category in ("http 400", "http 401", "http 403"):
                self.returning = None  # the identity cannot be extended any more: a new one next time
            self._failed("token", failure)
            return None
        except gevent.GreenletExit:  # Locust stopped the user mid-phase (at its first I/O): interrupted
            self.metrics.interrupt_phase("token")
            raise
        finally:
            self.http.client.close()  # a held session costs one socket, not two

    # ------------------------------------------------------------------ socket phase
    def _socket_phase(self, consumer: ConsumerIdentity, started: float) -> None:
        if not self.guard.admit(self.socket_host):
            return  # the run stopped while the messaging host was down
        settings, steps = self.settings, self.steps
        self.metrics.start_phase("socket")
        conv = _Conversation()
        failed: StepFailed | None = None
        activity = Activity(
            settings, steps, lambda: self.metrics.messages, stopping_event(self.environment), consumer.lp_token
        )
        try:
            with self._call(Step.CONNECT, self.socket_host):
                sock = journey.open_socket(settings, consumer.lp_token, **self._socket_options(activity))
            self._adopt(conv, sock)
            sock.on_notification = activity.inbox.put
            if settings.session == "realistic":
                conv.id = journey.find_open_conversation(settings, steps, sock, activity.inbox)
            if conv.id is not None:
                self.metrics.conversations.reused_one()
            else:
                self._request_conversation(conv, sock)
            ttc_ms = (time.perf_counter() - started) * 1000.0
            steps.report(Step.TIME_TO_CONVERSATION, ttc_ms, start_time=time.time() - ttc_ms / 1000.0)
            activity.attach(sock, conv.id, (time.perf_counter(), time.time()))
            sock = self._hold(conv, consumer, activity)
            stopping = stopping_event(self.environment).is_set()
            close_timeout = settings.request_timeout_s * (STOP_CLOSE_FACTOR if stopping else 1.0)
            conv.closing = True  # sent once, even if Locust stops us mid-request
            sock = self._close_conversation(conv, consumer, activity, close_timeout)
            conv.settled = True
            self.metrics.conversations.closed_one()
            try:
                info = sock.close(timeout=close_timeout)
            except ClientError as exc:  # the close handshake itself failed: still a socket-phase failure
                raise StepFailed(Step.CLOSE_CONVERSATION, categorize(exc), exc) from exc
            # e.g. aborted for a lost pong after the close: not a clean session; but a server close
            # as the socket closed, the conversation already closed, is nothing to reconnect for
            if info.kind != "clean" and not (self.reconnector.on and info.kind == "server"):
                raise StepFailed(Step.CLOSE_CONVERSATION, info.category or "dropped", info.error())
            self.backoff.succeeded()
        except StepFailed as failure:
            failed = failure
            if stopping_event(self.environment).is_set() and (
                (failure.step == Step.CLOSE_CONVERSATION and failure.category == "timeout")
                or failure.category == STOPPED
            ):
                self.metrics.interrupt_phase("socket")  # the stop storm, not the target (metrics.PhaseCounts)
            else:
                if not stopping_event(self.environment).is_set():
                    activity.abandon()  # messages still waiting for a reply are lost with the session
                self._failed("socket", failure)
        except gevent.GreenletExit:
            # Locust is stopping this user: leave the emulator/service clean, then let it stop.
            self._stopped_mid_session(conv, consumer)
            raise
        finally:
            activity.close()
            if conv.sock is not None:
                try:
                    self._release(conv.sock)
                except gevent.GreenletExit:  # killed while closing the socket: the conversation still counts
                    if conv.leftover():
                        conv.settled = True
                        self.cleanup.run_final(Leftover(consumer, conv.id))
                    raise
        if conv.leftover():
            conv.settled = True
            self._clean_up(consumer, conv, failed)

    def _socket_options(self, activity: Activity) -> dict[str, Any]:
        """The keywords of a session's socket (a reconnect's too): its keepalive and callbacks."""
        pings = self.settings.keepalive == "ping"  # else GetClock requests keep it alive (activity.clock)
        return {
            "ping_interval": self.settings.ping_interval_s if pings else None,
            "pong_timeout": self.settings.pong_timeout_s,
            "on_pong": self._on_pong,
            "on_pong_timeout": self._on_pong_timeout,
            "on_close": activity.inbox.poke,  # the hold wakes when the socket ends
        }

    def _request_conversation(self, conv: _Conversation, sock: ConsumerSocket) -> None:
        """``cm.ConsumerRequestConversation``: the session's conversation id (StepFailed if none)."""
        conv.requested = True
        with self.steps.measure(Step.REQUEST_CONVERSATION, categorize) as timed:
            try:
                response = sock.request(MessageType.REQUEST_CONVERSATION, None, timeout=self.settings.request_timeout_s)
                timed.elapsed_s = sock.last_answer_s
            except ErrorResponse:
                conv.requested = False  # an error answer opened nothing
                raise
            conv.id = conversation_id_of(response.body)
            if conv.id is None:
                raise StepFailed(Step.REQUEST_CONVERSATION, "bad json", ValueError("response has no conversationId"))
        self.metrics.conversations.opened_one()

    def _adopt(self, conv: _Conversation, sock: ConsumerSocket) -> None:
        """``sock`` is now the session's socket: counted open, its pings counted live."""
        conv.sock = sock
        self.metrics.socket_opened()
        self.metrics.live_sockets.add(sock)

    def _clean_up(self, consumer: ConsumerIdentity, conv: _Conversation, failed: StepFailed | None) -> None:
        """Hand what the failed socket left open to the cleanup (a new connection, outside the steps)."""
        first_pause = 0.0
        stopping = stopping_event(self.environment).is_set()
        if failed is not None and failed.step == Step.CLOSE_CONVERSATION and not stopping:
            first_pause = self.backoff.policy.session_pause(failed.category, 1)  # the close itself failed: a retry
        self.cleanup.run(Leftover(consumer, conv.id, first_pause))

    def _stopped_mid_session(self, conv: _Conversation, consumer: ConsumerIdentity) -> None:
        """Killed by Locust mid-session: settle the conversation on this socket if it can, else by the cleanup.

        Every user is killed at once, so the answers queue: they get as long as a close gets
        while the run stops (3x the request timeout). One frame on a socket that is already open
        costs far less than the cleanup's new connection, which would only queue behind them.
        """
        if conv.settled:
            return
        sock, wait_s = conv.sock, self.settings.request_timeout_s * STOP_CLOSE_FACTOR
        if sock is not None and sock.open:
            if conv.closing:  # the close was sent: its answer says whether it closed
                closed = sock.pending_response(MessageType.UPDATE_CONVERSATION_FIELD, wait_s)
                if closed is not None:
                    conv.settled = True
                    self.metrics.conversations.closed_one()
                    return
            elif conv.id is None and conv.requested:  # stopped while the server opened one: learn its id
                opened = sock.pending_response(MessageType.REQUEST_CONVERSATION, wait_s)
                conv.id = conversation_id_of(opened.body) if opened is not None else None
                if conv.id is not None:
                    conv.requested = False
                    self.metrics.conversations.opened_one()
            if conv.id is not None and not conv.closing and self._close_conversation_quietly(sock, conv.id, wait_s):
                conv.settled = True
                self.metrics.conversations.closed_one()
                return
        if conv.leftover():
            conv.settled = True
            self.cleanup.run_final(Leftover(consumer, conv.id))

    def _hold(self, conv: _Conversation, consumer: ConsumerIdentity, activity: Activity) -> ConsumerSocket:
        """Hold the conversation for the hold time (and until its talk is over); returns the socket it ends on.

        An early end (server close, drop, lost pong) fails the session, unless ``--lp-on-drop
        reconnect`` brings it back on the same conversation; ``--lp-token-refresh`` moves it to a
        new socket before its token expires. A failed talk step (``no reply``) ends it too.
        """
        assert conv.sock is not None and conv.id is not None
        stopping = stopping_event(self.environment)
        start_time, started = time.time(), time.perf_counter()
        deadline = started + self.settings.hold_s
        refresh = self._refresh_at(consumer)
        while True:
            try:
                due = activity.run(conv.sock)
            except StepFailed:
                if conv.sock.open:
                    raise  # the target answered wrong or late: the session fails with that step
                due = None  # the socket ended under the step: a drop, handled below
            now = time.perf_counter()
            elapsed_ms = (now - started) * 1000.0
            if conv.sock.open and (stopping.is_set() or (activity.done and now >= deadline)):
                if not stopping.is_set():  # a hold cut short by the end of the test is not a measurement
                    self.steps.report(Step.HOLD, elapsed_ms, start_time=start_time)
                return conv.sock
            if refresh is not None and now >= refresh and conv.sock.open:  # renew the token on a new socket
                refresh = self._refresh(conv, consumer, activity)
                continue
            wake = min((t for t in (deadline if activity.done else None, due, refresh) if t is not None), default=now)
            info = conv.sock.wait_closed(max(0.0, wake - now), interrupt=activity.wake)
            if info is None:
                continue
            if self.reconnector.on:  # while stopping too: the drop is then counted interrupted
                dropped, conv.sock = conv.sock, None
                self._release(dropped)  # the drop is counted as it happened
                try:
                    sock = self.reconnector.recover(info, consumer, conv.id, self._socket_options(activity))
                except Lost as lost:  # "stopped": the run's end cut the reconnect short (an interrupt)
                    failure = StepFailed(Step.HOLD, lost.category, info.error())
                    if lost.category == STOPPED:
                        raise failure from None  # a hold cut short by the end of the test is not a measurement
                else:
                    self._adopt(conv, sock)
                    activity.attach(sock, conv.id, None)
                    refresh = self._refresh_at(consumer)
                    continue
            else:
                failure = StepFailed(Step.HOLD, info.category or "dropped", info.error())
            self.steps.report(Step.HOLD, elapsed_ms, start_time=start_time, exception=failure)
            raise failure

    def _close_conversation(
        self, conv: _Conversation, consumer: ConsumerIdentity, activity: Activity, timeout: float
    ) -> ConsumerSocket:
        """Close the conversation; returns the socket it was closed on.

        With ``--lp-on-drop reconnect`` a socket the server ends under the close (its token
        expired as the close went out) comes back on the conversation, and the close is sent
        again there: the try the drop cut short is the reconnect's, not a failed close.
        """
        assert conv.sock is not None and conv.id is not None
        while True:
            sock = conv.sock
            start_time, started = time.time(), time.perf_counter()
            try:
                sock.request(MessageType.UPDATE_CONVERSATION_FIELD, close_conversation_body(conv.id), timeout=timeout)
            except Exception as exc:
                info = None if sock.open or not self.reconnector.on else sock.wait_closed(0)
                if info is None:
                    step = Step.CLOSE_CONVERSATION
                    failure = self.steps.failed(step, exc, categorize, started=started, start_time=start_time)
                    raise failure from (None if failure is exc else exc)
                conv.sock = None
                self._release(sock)
                try:
                    self._adopt(conv, self.reconnector.recover(info, consumer, conv.id, self._socket_options(activity)))
                except Lost as lost:  # "stopped": the run's end cut the reconnect short (an interrupt)
                    raise StepFailed(Step.CLOSE_CONVERSATION, lost.category, info.error()) from exc
                continue
            self.steps.report(Step.CLOSE_CONVERSATION, sock.last_answer_s * 1000.0, start_time=start_time)
            return sock

    def _refresh_at(self, consumer: ConsumerIdentity, *, renewed: bool = False) -> float | None:
        """When (perf_counter) the LP token must be renewed mid-hold, or None."""
        due = self.reconnector.refresh_due(consumer, renewed=renewed)
        return None if due is None else time.perf_counter() + due

    def _refresh(self, conv: _Conversation, consumer: ConsumerIdentity, activity: Activity) -> float | None:
        """A new token and a new socket on the same conversation; the old socket closes cleanly.

        Returns when the next refresh is due; None when this one failed (the old socket then
        carries on until the server closes it, and the drop policy applies).
        """
        assert conv.sock is not None and conv.id is not None
        try:
            sock = self.reconnector.refresh(consumer, conv.id, self._socket_options(activity))
        except Exception:  # counted by the reconnector; the old socket is still good until it expires
            log.debug("token refresh mid-hold failed", exc_info=True)
            return None
        old, conv.sock = conv.sock, None
        self._release(old)
        self._adopt(conv, sock)
        activity.attach(sock, conv.id, None)
        return self._refresh_at(consumer, renewed=True)

    def _on_pong(self, rtt_s: float) -> None:
        self.metrics.pings_answered += 1
        self.steps.report(Step.PING, rtt_s * 1000.0, start_time=time.time() - rtt_s)

    def _on_pong_timeout(self) -> None:
        """The client aborts the socket; the hold then fails the session with "pong timeout"."""
        self.metrics.pong_timeouts += 1
        timeout_s = self.settings.pong_timeout_s
        failure = StepFailed(Step.PING, "pong timeout")
        self.steps.report(Step.PING, timeout_s * 1000.0, start_time=time.time() - timeout_s, exception=failure)

    def _close_conversation_quietly(self, sock: ConsumerSocket, conversation_id: str, wait_s: float) -> bool:
        try:
            with gevent.Timeout(wait_s), self.steps.measure(Step.CLOSE_CONVERSATION, categorize):
                sock.request(MessageType.UPDATE_CONVERSATION_FIELD, close_conversation_body(conversation_id), timeout=wait_s)
        except (StepFailed, gevent.Timeout):
            log.debug("closing conversation while stopping failed", exc_info=True)
            return False
        return True

    def _release(self, sock: ConsumerSocket) -> None:
        """Close the socket (cleanly, if it is still open) and account for how it ended, killed or not."""
        try:
            close_within(sock, CLEANUP_TIMEOUT_S)
        finally:
            self.metrics.live_sockets.discard(sock)
            self.metrics.pings_sent += sock.pings_sent
            info = sock.close_info
            self.metrics.socket_closed(info.kind if info else "dropped", info.code if info else None)
