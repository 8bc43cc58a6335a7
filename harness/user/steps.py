"""The steps of a session, their phases, and the ONE place where a step is timed and reported.

Every step -- an IDP call, the handshake, a socket request, a pong, the hold -- reaches Locust's
statistics through :meth:`StepReporter.report`, and every step that the harness times itself is
timed by :meth:`StepReporter.measure`. The request type of each entry names its phase, so Locust's
tables group ``token`` and ``socket`` steps, and a step name never changes between runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from locust.event import EventHook


class Step:
    """Stable step names (Locust stats names) and the phase each belongs to."""

    ANONYMOUS_AUTHORIZE: Final = "anonymous-authorize"
    AUTHENTICATE: Final = "authenticate"
    CONNECT: Final = "connect"
    SUBSCRIBE_CONVERSATIONS: Final = "subscribe-conversations"  # realistic session: until the first notification
    REQUEST_CONVERSATION: Final = "request-conversation"
    SUBSCRIBE_MESSAGES: Final = "subscribe-messages"  # ms.SubscribeMessagingEvents of a session that talks
    PUBLISH: Final = "publish"  # a ContentEvent's ms.PublishEvent, until its PublishEventResponse
    MESSAGE_ROUND_TRIP: Final = "message-round-trip"  # a publish until the agent's reply arrives
    FIRST_AGENT_REPLY: Final = "first-agent-reply"  # the conversation id until the agent's first message
    GET_CLOCK: Final = "get-clock"  # the GetClock keepalive (--lp-keepalive getclock), until its answer
    PING: Final = "ping"
    HOLD: Final = "hold"
    CLOSE_CONVERSATION: Final = "close-conversation"
    RECONNECT: Final = "reconnect"  # a socket lost mid-hold, until the conversation is resumed (--lp-on-drop)
    TIME_TO_CONVERSATION: Final = "time-to-conversation"


class Phase:
    TOKEN: Final = "token"
    SOCKET: Final = "socket"
    SESSION: Final = "session"  # derived, whole-session measures such as time-to-conversation


STEP_PHASES: Final = {
    Step.ANONYMOUS_AUTHORIZE: Phase.TOKEN,
    Step.AUTHENTICATE: Phase.TOKEN,
    Step.CONNECT: Phase.SOCKET,
    Step.SUBSCRIBE_CONVERSATIONS: Phase.SOCKET,
    Step.REQUEST_CONVERSATION: Phase.SOCKET,
    Step.SUBSCRIBE_MESSAGES: Phase.SOCKET,
    Step.PUBLISH: Phase.SOCKET,
    Step.MESSAGE_ROUND_TRIP: Phase.SOCKET,
    Step.FIRST_AGENT_REPLY: Phase.SOCKET,
    Step.PING: Phase.SOCKET,
    Step.GET_CLOCK: Phase.SOCKET,
    Step.HOLD: Phase.SOCKET,
    Step.CLOSE_CONVERSATION: Phase.SOCKET,
    Step.RECONNECT: Phase.SOCKET,
    Step.TIME_TO_CONVERSATION: Phase.SESSION,
}
STEP_ORDER: Final = tuple(STEP_PHASES)


class StepFailed(Exception):
    """Wraps the cause of a failed step with its failure category, as Locust's failure table shows it."""

    def __init__(self, step: str, category: str, cause: BaseException | None = None) -> None:
        detail = f": {cause}" if cause is not None and str(cause) else ""
        super().__init__(f"{category}{detail}")
        self.step = step
        self.category = category
        self.cause = cause


@dataclass(slots=True)
class Timed:
    """A measured block's own word on its time: a socket request's write-to-answer time, read where the
    answer was read (``ConsumerSocket.last_answer_s``), leaves out the wait for the user's greenlet to
    resume behind the others the loop woke first -- the generator's time, not the target's."""

    elapsed_s: float | None = None


@dataclass
class StepReporter:
    """Reports steps of one user to Locust's ``request`` event."""

    request_event: EventHook
    context: dict[str, Any] | None = None

    def report(
        self,
        step: str,
        response_time_ms: float,
        *,
        start_time: float,
        exception: BaseException | None = None,
        response_length: int = 0,
    ) -> None:
        """The single place a step enters Locust's statistics (and its failure table)."""
        self.request_event.fire(
            request_type=STEP_PHASES[step],
            name=step,
            response_time=response_time_ms,
            response_length=response_length,
            exception=exception,
            context=self.context or {},
            start_time=start_time,
            url=None,
        )

    @contextmanager
    def measure(self, step: str, categorize: Any) -> Iterator[Timed]:
        """Time the block and report it (its :class:`Timed` time, where it gives one); on an exception report
        a StepFailed with its category, then re-raise it."""
        start_time = time.time()
        started = time.perf_counter()
        timed = Timed()
        try:
            yield timed
        except Exception as exc:
            failure = self.failed(step, exc, categorize, started=started, start_time=start_time)
            raise failure from (None if failure is exc else exc)
        elapsed = time.perf_counter() - started if timed.elapsed_s is None else timed.elapsed_s
        self.report(step, elapsed * 1000.0, start_time=start_time)

    def failed(self, step: str, exc: Exception, categorize: Any, *, started: float, start_time: float) -> StepFailed:
        """Report ``step``, timed from ``started`` (perf_counter), as failed by ``exc``; the StepFailed to raise."""
        failure = exc if isinstance(exc, StepFailed) else StepFailed(step, categorize(exc), exc)
        self.report(step, (time.perf_counter() - started) * 1000.0, start_time=start_time, exception=failure)
        return failure
