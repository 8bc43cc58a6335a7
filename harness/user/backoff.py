"""Backoff on the Locust side: how long a user pauses after a failure, and when a host is down.

The rules are :mod:`harness.protocol.retry`'s (LivePerson's retry guidance, pure); this module
brings the clock, the log and the run. Each user has a :class:`UserBackoff`: any failed session
pauses the user before its next one (5, 10, 15 s, then jittered exponential backoff; a 429 its
``Retry-After``, at least 1 s), and a success resets the count. Each process has one
:class:`TargetGuard`, shared by its users: a circuit breaker per host, so that when most recent
attempts to a host got no answer at all (refused, reset, timeout) the users wait for one probe
instead of all hammering it, and the log says once that the target is down -- and, for the
embedded emulator, that it exited and how -- and again when it is back. ``--lp-on-target-down
abort`` ends the run instead (end reason ``target down``).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WorkerRunner

from harness.protocol import paths
from harness.protocol.retry import NO_ANSWER, CircuitBreaker, RetryPolicy, status_of
from harness.reports import exitcodes
from harness.settings import Settings
from harness.user.metrics import HarnessMetrics
from harness.user.state import state_of, stopping_event

log = logging.getLogger("lp-harness")
TARGET_DOWN = "target down"  # the run's end reason when --lp-on-target-down abort ends it
TARGET_DOWN_MESSAGE = "lp_target_down"  # a worker's breaker tripped under abort: the master ends the run
# A crowd of users trips it at once; a single user failing slowly (5, 10, 15 s...) needs ten failures in a row.
BREAKER_WINDOW = 20
BREAKER_MIN_CALLS = 10
BREAKER_THRESHOLD = 0.8
BREAKER_OPEN_S = 5.0  # the first probe after 5 s, then 10, 20, 40, 60 s while it keeps failing
BREAKER_MAX_OPEN_S = 60.0


def policy_of(settings: Settings, max_attempts: int = 0) -> RetryPolicy:
    """The run's retry policy (``--lp-retry-pauses``, ``--lp-backoff-base``, ``--lp-backoff-cap``)."""
    return RetryPolicy(
        server_error_pauses=settings.retry_pauses_s,
        backoff_base_s=settings.backoff_base_s,
        backoff_cap_s=settings.backoff_cap_s,
        max_attempts=max_attempts,
    )


def host_of(url: str) -> str:
    """The breaker's key for a URL: ``host:port`` (the IDP and the socket share one on the emulator)."""
    host, port = paths.host_port(url)
    return f"{host}:{port}"


def retry_after_of(failure: Any) -> float | None:
    """The ``Retry-After`` a refusal carried (HttpStatusError, HandshakeRejected), if any."""
    value = getattr(getattr(failure, "cause", None), "retry_after", None)
    return value if isinstance(value, int | float) else None


class UserBackoff:
    """One user's failures in a row and the pause they earn before its next session."""

    def __init__(self, policy: RetryPolicy, metrics: HarnessMetrics) -> None:
        self.policy = policy
        self.metrics = metrics  # read each time: a stats reset replaces its counters
        self.failures = 0
        self.until = 0.0  # monotonic time before which the next session must not start

    def failed(self, category: str, retry_after: float | None = None) -> float:
        """A session failed: the pause before the next one, counted from now."""
        self.failures += 1
        pause = self.policy.session_pause(category, self.failures, retry_after=retry_after)
        self.until = time.monotonic() + pause
        counts = self.metrics.backoff
        counts.pauses += 1
        counts.pause_s += pause
        counts.throttled += status_of(category) == 429
        return pause

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0

    def remaining(self) -> float:
        return max(0.0, self.until - time.monotonic())


@dataclass
class _Host:
    breaker: CircuitBreaker
    recent: deque[str | None] = field(default_factory=lambda: deque(maxlen=BREAKER_WINDOW))
    down_since: float | None = None
    held_back: int = 0  # attempts that waited for the breaker during this outage


class TargetGuard:
    """The circuit breakers of one process, one per host, shared by every user."""

    def __init__(self, environment: Environment, run: float | None) -> None:
        self.environment = environment
        self.run = run  # the run it belongs to (a web UI process runs many)
        self.hosts: dict[str, _Host] = {}
        self.aborting = False

    def _host(self, host: str) -> _Host:
        entry = self.hosts.get(host)
        if entry is None:
            breaker = CircuitBreaker(
                BREAKER_WINDOW, BREAKER_MIN_CALLS, BREAKER_THRESHOLD, BREAKER_OPEN_S, BREAKER_MAX_OPEN_S
            )
            entry = self.hosts[host] = _Host(breaker)
        return entry

    def admit(self, host: str) -> bool:
        """Wait while ``host``'s breaker is open; False when the run stops meanwhile (make no attempt then)."""
        entry = self._host(host)
        stopping = stopping_event(self.environment)
        waited = 0.0
        while True:
            wait = entry.breaker.wait(time.monotonic())
            if wait <= 0:
                break
            if stopping.is_set():
                return False
            started = time.monotonic()
            stopping.wait(wait)
            waited += time.monotonic() - started
        if waited:
            entry.held_back += 1
            counts = self._metrics().backoff
            counts.breaker_waits += 1
            counts.breaker_wait_s += waited
        return True

    def record(self, host: str, category: str | None) -> None:
        """One attempt's outcome: ``category`` None for an answer (any answer, an error status too)."""
        entry = self._host(host)
        failed = category in NO_ANSWER
        entry.recent.append(category if failed else None)
        breaker = entry.breaker
        recovered = breaker.recoveries
        now = time.monotonic()
        if breaker.record(failed, now) or (failed and self._emulator_gone() and breaker.trip(now)):
            self._down(host, entry)  # an embedded emulator that exited is down: no need to count to 16
        elif breaker.recoveries != recovered:
            self._back(host, entry)

    # ------------------------------------------------------------------ what the log says
    def _down(self, host: str, entry: _Host) -> None:
        self._metrics().backoff.breaker_trips += 1
        entry.down_since = time.monotonic()
        entry.held_back = 0
        failed = Counter(c for c in entry.recent if c is not None)
        what = ", ".join(f"{name} x{n}" for name, n in failed.most_common())
        why = f"{sum(failed.values())} of the last {len(entry.recent)} attempts got no answer ({what})"
        emulator = self._emulator_note()
        if emulator:
            why = f"{emulator}; {why}" if self._emulator_gone() else f"{why}; {emulator}"
        settings = state_of(self.environment).settings
        abort = settings is not None and settings.on_target_down == "abort"
        then = (
            "aborting the run (--lp-on-target-down abort)"
            if abort
            else f"users pause and one probe tries again in {entry.breaker.open_s:.0f} s (then 10, 20... up to "
            f"{BREAKER_MAX_OPEN_S:.0f} s) until it answers"
        )
        log.error("TARGET DOWN: %s: %s; %s", host, why, then)
        if abort:
            self._abort(f"{host}: {why}")

    def _back(self, host: str, entry: _Host) -> None:
        self._metrics().backoff.breaker_recoveries += 1
        down_s = time.monotonic() - entry.down_since if entry.down_since is not None else 0.0
        log.warning(
            "target %s is back: it answers again after %.1f s down (%d attempts waited for it)",
            host,
            down_s,
            entry.held_back,
        )
        entry.down_since = None

    def _emulator_gone(self) -> bool:
        emulator = state_of(self.environment).emulator
        return emulator is not None and not emulator.alive()

    def _emulator_note(self) -> str:
        """For the embedded emulator: whether it is still running, or how it exited."""
        emulator = state_of(self.environment).emulator
        if emulator is None:
            return ""
        if emulator.alive():
            return f"the embedded emulator (pid {emulator.pid}) is still running"
        status = emulator.stop(timeout=1.0)  # already gone: this only reaps it and reads its status
        how = ""
        if status < 0:
            try:
                how = f", killed by {signal.Signals(-status).name}"
            except ValueError:
                how = f", killed by signal {-status}"
        return f"the embedded emulator (pid {emulator.pid}) exited with status {status}{how}"

    def _abort(self, why: str) -> None:
        """End the run as a threshold abort does (harness.user.gate); a worker asks its master to."""
        runner = self.environment.runner
        if self.aborting or runner is None:
            return
        self.aborting = True
        if isinstance(runner, WorkerRunner):  # the master ends the whole run; these users pause meanwhile
            runner.send_message(TARGET_DOWN_MESSAGE, {"why": why})
            return
        abort_run(self.environment)

    def _metrics(self) -> HarnessMetrics:
        return state_of(self.environment).metrics


def abort_run(environment: Environment) -> None:
    """End the run for a target down: end reason ``target down``, exit code 2, from a greenlet of its own."""
    state = state_of(environment)
    state.end_reason = state.end_reason or TARGET_DOWN
    environment.process_exit_code = exitcodes.ERROR
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


def listen_for_workers(environment: Environment) -> None:
    """On a master: a worker whose breaker tripped under ``--lp-on-target-down abort`` ends the run."""

    def on_target_down(environment: Environment, msg: Any, **_: Any) -> None:
        if state_of(environment).end_reason == TARGET_DOWN:
            return  # another worker said it first
        log.error(
            "TARGET DOWN on worker %s: %s; aborting the run (--lp-on-target-down abort)",
            msg.node_id,
            msg.data.get("why"),
        )
        abort_run(environment)

    environment.runner.register_message(TARGET_DOWN_MESSAGE, on_target_down)


def guard_of(environment: Environment) -> TargetGuard:
    """This process's guard for the current run (created on first use)."""
    run = state_of(environment).started_at
    guard: TargetGuard | None = getattr(environment, "lp_target_guard", None)
    if guard is None or guard.run != run:
        guard = TargetGuard(environment, run)
        environment.lp_target_guard = guard  # type: ignore[attr-defined]
    return guard
