"""The consumer user: the tutorial's whole sequence, one session after another.

anonymous-authorize -> authenticate -> connect -> request-conversation -> hold (pings)
-> close-conversation -> close socket; then a new session with a new identity.

Each step is timed and reported by :class:`~harness.user.steps.StepReporter`; each session fails
at most once, in the phase where it failed, with one category (:mod:`harness.user.metrics`).
"""

from __future__ import annotations

import itertools
import logging
import os
import time

import gevent
from locust import User, task
from locust.contrib.fasthttp import FastHttpSession

from harness.client.errors import ClientError, categorize
from harness.client.idp import IdentitySource, IdpClient
from harness.client.keepalive import install_keepalive_check
from harness.client.resolver import install_numeric_fast_path
from harness.client.socket import ConsumerSocket
from harness.protocol.messages import MessageType, close_conversation_body, conversation_id_of
from harness.user.state import metrics_of, settings_of, stopping_event
from harness.user.steps import Step, StepFailed, StepReporter

log = logging.getLogger(__name__)
CLEANUP_TIMEOUT_S = 5.0
STOP_CLOSE_FACTOR = 3.0  # once the test is stopping every user closes at once: closes get 3x the request timeout
MAX_RETRY_AFTER_S = 60.0
_user_numbers = itertools.count(1)
_slow_closes = itertools.count(1)
install_keepalive_check()  # the token phase reuses its connection past 1,024 open sockets


def _note_slow_close() -> None:
    """Say it once, then every 1,000th: thousands of users stopping at once must not flood the log."""
    n = next(_slow_closes)
    if n == 1 or n % 1000 == 0:
        log.warning("%d socket close(s) did not finish in %.0f s (the socket is torn down anyway)", n, CLEANUP_TIMEOUT_S)


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
        self.http = FastHttpSession(
            self.settings.idp,
            request_event=environment.events.request,  # unused: StepReporter reports every step
            user=self,
            insecure=not self.settings.verify_tls,
            network_timeout=self.settings.http_timeout_s,
            connection_timeout=self.settings.http_timeout_s,
            max_retries=0,
        )
        self.idp = IdpClient(self.http, self.settings.account)
        self.retry_after_s = 0.0

    def wait_time(self) -> float:
        """Think time, plus any Retry-After the IDP asked for (RETRY: wait before trying again)."""
        backoff, self.retry_after_s = self.retry_after_s, 0.0
        return self.settings.think_time_s + min(backoff, MAX_RETRY_AFTER_S)

    @task
    def session(self) -> None:
        """One session: the token phase, then the socket phase; a failure ends the session."""
        started = time.perf_counter()
        lp_token = self._token_phase()
        if lp_token is not None and not stopping_event(self.environment).is_set():
            self._socket_phase(lp_token, started)

    # ------------------------------------------------------------------ token phase
    def _token_phase(self) -> str | None:
        self.metrics.start_phase("token")
        try:
            if self.identities.anonymous:
                with self.steps.measure(Step.ANONYMOUS_AUTHORIZE, categorize):
                    auth_code = self.idp.anonymous_authorize()
            else:
                auth_code = self.identities.external_token()
            with self.steps.measure(Step.AUTHENTICATE, categorize):
                return self.idp.authenticate(auth_code)
        except StepFailed as failure:
            self.metrics.fail_phase("token", failure.category)
            self.retry_after_s = getattr(failure.cause, "retry_after", None) or 0.0
            return None
        finally:
            self.http.client.close()  # a held session costs one socket, not two

    # ------------------------------------------------------------------ socket phase
    def _socket_phase(self, lp_token: str, started: float) -> None:
        settings, steps = self.settings, self.steps
        self.metrics.start_phase("socket")
        sock: ConsumerSocket | None = None
        conversation_id: str | None = None
        try:
            with steps.measure(Step.CONNECT, categorize):
                sock = ConsumerSocket.connect(
                    settings.socket_url,
                    lp_token,
                    timeout=settings.connect_timeout_s,
                    verify_tls=settings.verify_tls,
                    ping_interval=settings.ping_interval_s,
                    pong_timeout=settings.pong_timeout_s,
                    on_pong=self._on_pong,
                    on_pong_timeout=self._on_pong_timeout,
                )
            self.metrics.socket_opened()
            self.metrics.live_sockets.add(sock)
            with steps.measure(Step.REQUEST_CONVERSATION, categorize):
                response = sock.request(MessageType.REQUEST_CONVERSATION, None, timeout=settings.request_timeout_s)
                conversation_id = conversation_id_of(response.body)
                if conversation_id is None:
                    raise StepFailed(
                        Step.REQUEST_CONVERSATION, "bad json", ValueError("response has no conversationId")
                    )
            ttc_ms = (time.perf_counter() - started) * 1000.0
            steps.report(Step.TIME_TO_CONVERSATION, ttc_ms, start_time=time.time() - ttc_ms / 1000.0)
            self._hold(sock)
            closing_id, conversation_id = conversation_id, None  # sent once, even if Locust stops us mid-request
            stopping = stopping_event(self.environment).is_set()
            close_timeout = settings.request_timeout_s * (STOP_CLOSE_FACTOR if stopping else 1.0)
            with steps.measure(Step.CLOSE_CONVERSATION, categorize):
                sock.request(
                    MessageType.UPDATE_CONVERSATION_FIELD, close_conversation_body(closing_id), timeout=close_timeout
                )
            try:
                sock.close(timeout=close_timeout)
            except ClientError as exc:  # the close handshake itself failed: still a socket-phase failure
                raise StepFailed(Step.CLOSE_CONVERSATION, categorize(exc), exc) from exc
        except StepFailed as failure:
            if (
                failure.step == Step.CLOSE_CONVERSATION
                and failure.category == "timeout"
                and stopping_event(self.environment).is_set()
            ):
                self.metrics.interrupt_phase("socket")  # the stop storm, not the target (metrics.PhaseCounts)
            else:
                self.metrics.fail_phase("socket", failure.category)
        except gevent.GreenletExit:
            # Locust is stopping this user: leave the emulator/service clean, then let it stop.
            if sock is not None and sock.open:
                if conversation_id is None:  # stopped while the server opened one: learn its id
                    opened = sock.pending_response(MessageType.REQUEST_CONVERSATION, CLEANUP_TIMEOUT_S)
                    conversation_id = conversation_id_of(opened.body) if opened is not None else None
                if conversation_id is not None:
                    self._close_conversation_quietly(sock, conversation_id)
            raise
        finally:
            if sock is not None:
                self._release(sock)

    def _hold(self, sock: ConsumerSocket) -> None:
        """Hold the socket for the hold time; an early end (server close, drop, lost pong) fails the session."""
        stopping = stopping_event(self.environment)
        start_time, started = time.time(), time.perf_counter()
        info = sock.wait_closed(self.settings.hold_s, interrupt=stopping)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if info is None:
            if not stopping.is_set():  # a hold cut short by the end of the test is not a measurement
                self.steps.report(Step.HOLD, elapsed_ms, start_time=start_time)
            return
        failure = StepFailed(Step.HOLD, info.category or "dropped", info.error())
        self.steps.report(Step.HOLD, elapsed_ms, start_time=start_time, exception=failure)
        raise failure

    def _on_pong(self, rtt_s: float) -> None:
        self.metrics.pings_answered += 1
        self.steps.report(Step.PING, rtt_s * 1000.0, start_time=time.time() - rtt_s)

    def _on_pong_timeout(self) -> None:
        """The client aborts the socket; the hold then fails the session with "pong timeout"."""
        self.metrics.pong_timeouts += 1
        timeout_s = self.settings.pong_timeout_s
        failure = StepFailed(Step.PING, "pong timeout")
        self.steps.report(Step.PING, timeout_s * 1000.0, start_time=time.time() - timeout_s, exception=failure)

    def _close_conversation_quietly(self, sock: ConsumerSocket, conversation_id: str) -> None:
        try:
            with gevent.Timeout(CLEANUP_TIMEOUT_S), self.steps.measure(Step.CLOSE_CONVERSATION, categorize):
                sock.request(
                    MessageType.UPDATE_CONVERSATION_FIELD,
                    close_conversation_body(conversation_id),
                    timeout=self.settings.request_timeout_s,
                )
        except (StepFailed, gevent.Timeout):
            log.debug("closing conversation while stopping failed", exc_info=True)

    def _release(self, sock: ConsumerSocket) -> None:
        """Close the socket (cleanly, if it is still open) and account for how it ended."""
        if sock.open:
            try:
                with gevent.Timeout(CLEANUP_TIMEOUT_S):
                    sock.close()
            except gevent.Timeout:
                _note_slow_close()
        self.metrics.live_sockets.discard(sock)
        self.metrics.pings_sent += sock.pings_sent
        info = sock.close_info
        self.metrics.socket_closed(info.kind if info else "dropped", info.code if info else None)
