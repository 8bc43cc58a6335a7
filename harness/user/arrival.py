"""The open model (``--lp-arrival-rate``): new sessions per second, whatever each one holds.

As k6's ``constant-arrival-rate``/``ramping-arrival-rate`` and Gatling's open injection: sessions
start at the asked rate, and how many run at once is a result, not an input. ``-u`` is the cap of
sessions at once (k6's pre-allocated VUs): each user waits for an arrival from its process's
:class:`Pacer` before each session, and an arrival that finds every user of its process in a
session is *dropped* (k6's ``dropped_iterations``): the run says so at once (one log line per
process), and ``summary.json``'s ``arrival`` section and the terminal say by how much the rate was
missed. An arrival that a free user starts more than :data:`LATE_S` after its time is *late* (the
generator itself is too busy). Think time and retry pauses do not apply: each arrival is a new
session; the target-down breaker still holds sessions back (their arrivals are then dropped).

Arrivals are spread evenly (the n-th at the time the rate's integral reaches n - 1/2) from the
moment the process has spawned its users (Locust's ``spawning_complete``) to the test's stop; a ramp
``FROM:TO`` is linear over the run time, then stays at TO. With workers each process paces
``1/N`` of the rate (N: the workers at the test's start), and the master sums their counts.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import gevent
from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.user.state import state_of

log = logging.getLogger("lp-harness")
LATE_S: Final = 0.1  # an arrival started later than this after its time is late
LATE_TOLERANCE: Final = 0.01  # the rate is kept while at most this share of sessions started late (and none dropped)
PLAN_OPTION: Final = "lp_arrival_plan"  # hidden: "PROCESSES,RAMP_S", the coordinator's word to every process


@dataclass(frozen=True)
class Plan:
    """The rate a process paces: sessions/s from ``rate_from`` to ``rate_to`` over ``ramp_s`` (None: constant)."""

    rate_from: float
    rate_to: float
    ramp_s: float | None = None

    def arrivals_by(self, t: float) -> float:
        """The rate's integral: how many arrivals are due by ``t`` seconds (fractional)."""
        a, b, ramp = self.rate_from, self.rate_to, self.ramp_s
        if not ramp or a == b:
            return b * t
        if t <= ramp:
            return a * t + (b - a) * t * t / (2 * ramp)
        return (a + b) * ramp / 2 + b * (t - ramp)

    def time_of(self, n: float) -> float | None:
        """When the integral reaches ``n``; None if it never does (a rate that ramps down to 0)."""
        a, b, ramp = self.rate_from, self.rate_to, self.ramp_s
        if not ramp or a == b:
            return n / b if b > 0 else None
        at_ramp = (a + b) * ramp / 2
        if n > at_ramp:
            return ramp + (n - at_ramp) / b if b > 0 else None
        k = (b - a) / (2 * ramp)  # k t^2 + a t - n = 0: its smaller non-negative root (k < 0 too)
        return (-a + math.sqrt(max(0.0, a * a + 4 * k * n))) / (2 * k)


class _Waiter:
    __slots__ = ("result", "gone")

    def __init__(self) -> None:
        self.result: AsyncResult = AsyncResult()
        self.gone = False  # its user was stopped while waiting: skip it


class Pacer:
    """One process's arrivals: hands each to a waiting user, or counts it dropped."""

    def __init__(self, plan: Plan, users_cap: int | None = None) -> None:
        self.plan = plan
        self.users_cap = users_cap
        self.waiting: deque[_Waiter] = deque()
        self.t0: float | None = None  # perf_counter when arrivals began
        self.t_end: float | None = None
        self.due = self.started = self.dropped = self.late = self.active = self.peak_active = 0
        self.late_max_s = 0.0
        self._greenlet: gevent.Greenlet | None = None
        self._warned_drop = self._warned_late = False

    def begin(self) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """No more arrivals. The window ends now, or at the first arrival not handed out yet if that is
        earlier: the stop's own listeners run before this one, and what fell due meanwhile was never asked."""
        if self.t0 is not None and self.t_end is None:
            upcoming = self.plan.time_of(self.due + 0.5)
            now = time.perf_counter()
            self.t_end = now if upcoming is None else min(now, self.t0 + upcoming)
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def elapsed(self) -> float:
        if self.t0 is None:
            return 0.0
        return (self.t_end or time.perf_counter()) - self.t0

    def take(self) -> None:
        """Wait for this process's next arrival (a user's ``wait_time``: a stop kills it here at once)."""
        waiter = _Waiter()
        self.waiting.append(waiter)
        try:
            scheduled = waiter.result.get()
        finally:
            waiter.gone = not waiter.result.ready()
        self.started += 1
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        late = self.elapsed() - scheduled
        self.late_max_s = max(self.late_max_s, late)
        if late > LATE_S:
            self.late += 1
            if not self._warned_late and self.late > max(5, LATE_TOLERANCE * self.started):
                self._warned_late = True
                log.warning(
                    "arrival rate not kept: %d of %d sessions started more than %.0f ms after their arrival "
                    "(up to %.0f ms): this load generator is too busy -- add processes (--processes N)",
                    self.late, self.started, LATE_S * 1000, late * 1000,
                )  # fmt: skip

    def ended(self) -> None:
        """A session that took an arrival is over."""
        self.active = max(0, self.active - 1)

    def _run(self) -> None:
        assert self.t0 is not None
        while True:
            elapsed = time.perf_counter() - self.t0
            due = int(self.plan.arrivals_by(elapsed) + 0.5)  # the n-th arrival at integral n - 1/2
            while self.due < due:
                scheduled = self.plan.time_of(self.due + 0.5) or elapsed
                self.due += 1
                self._hand(scheduled)
            upcoming = self.plan.time_of(self.due + 0.5)
            wait = 1.0 if upcoming is None else upcoming - (time.perf_counter() - self.t0)
            gevent.sleep(max(0.0, min(wait, 1.0)))

    def _hand(self, scheduled: float) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.gone:
                waiter.result.set(scheduled)
                return
        self.dropped += 1
        if not self._warned_drop:
            self._warned_drop = True
            log.warning(
                "arrival rate not kept: an arrival %.1f s in found every user of this process in a session "
                "(%s users, %d sessions at once): it is dropped, and so is every such arrival -- raise -u "
                "(the cap of sessions at once) or lower --lp-arrival-rate",
                scheduled, self.users_cap if self.users_cap is not None else "all", self.active,
            )  # fmt: skip

    def counts(self) -> dict[str, Any]:
        """What this process did, for the summary (a worker sends it with its stats reports)."""
        elapsed = self.elapsed()
        return {
            "elapsed_s": elapsed,
            "planned": self.plan.arrivals_by(elapsed),
            "due": self.due,
            "started": self.started,
            "dropped": self.dropped,
            "late": self.late,
            "late_max_ms": self.late_max_s * 1000.0,
            "peak_active": self.peak_active,
            "active": self.active,
        }


class UserArrivals:
    """A user's side: in the open model its ``wait_time`` waits for an arrival and its session needs one."""

    def __init__(self, environment: Environment, on: bool) -> None:
        self.environment = environment
        self.on = on
        self._ticket = False
        self._in_session: Pacer | None = None

    def wait(self) -> float:
        """Locust's ``wait_time`` in the open model: until this user's next arrival (then no wait)."""
        if self._in_session is not None:
            self._in_session.ended()
            self._in_session = None
        pacer = pacer_of(self.environment)
        if pacer is None:
            return 1.0  # no test running here (a configuration error stopped it): nothing to pace
        pacer.take()
        self._ticket = True
        return 0.0

    def admitted(self) -> bool:
        """May a session start now? Always in the closed model; in the open one, once per arrival."""
        if not self.on:
            return True
        if not self._ticket:
            return False  # the user's first task, before any arrival: it waits in wait_time next
        self._ticket = False
        self._in_session = pacer_of(self.environment)
        return True


def pacer_of(environment: Environment) -> Pacer | None:
    return getattr(environment, "lp_arrival_pacer", None)


def _plan(environment: Environment) -> tuple[Plan, int] | None:
    """This process's share of the rate: (plan, processes) from the settings and the coordinator's word."""
    settings = state_of(environment).settings
    if settings is None or settings.arrival_rate is None:
        return None
    rate_from, rate_to = settings.arrival_rate
    processes, ramp = 1, None
    raw = getattr(environment.parsed_options, PLAN_OPTION, None)
    if raw:
        text_processes, _, text_ramp = str(raw).partition(",")
        processes, ramp = max(1, int(text_processes)), (float(text_ramp) if text_ramp else None)
    if ramp is None and rate_from != rate_to:
        ramp = float(getattr(environment.parsed_options, "run_time", None) or 0) or None
    return Plan(rate_from / processes, rate_to / processes, ramp), processes


def install(environment: Environment) -> None:
    """Every process: a pacer per test where users run; on a master, the workers' counts."""
    events, options = environment.events, environment.parsed_options
    runner = environment.runner
    environment.lp_arrival_parts = {}

    def on_test_start(**_: Any) -> None:
        environment.lp_arrival_parts = {}
        environment.lp_arrival_pacer = None
        settings = state_of(environment).settings
        if settings is None or settings.arrival_rate is None:
            return
        if not isinstance(runner, WorkerRunner):  # the coordinator tells every process its share
            processes = runner.worker_count if isinstance(runner, MasterRunner) else 1
            ramp = getattr(options, "run_time", None) if settings.arrival_rate[0] != settings.arrival_rate[1] else None
            setattr(options, PLAN_OPTION, f"{max(1, processes)},{ramp or ''}")
        if not isinstance(runner, MasterRunner):
            plan = _plan(environment)
            if plan is not None:
                environment.lp_arrival_pacer = Pacer(plan[0])

    def on_spawning_complete(user_count: int, **_: Any) -> None:
        pacer = pacer_of(environment)
        if pacer is not None:
            pacer.users_cap = getattr(runner, "user_count", None)
            pacer.begin()

    def on_test_stopping(**_: Any) -> None:
        pacer = pacer_of(environment)
        if pacer is not None:
            pacer.stop()

    events.test_start.add_listener(on_test_start)
    events.spawning_complete.add_listener(on_spawning_complete)
    events.test_stopping.add_listener(on_test_stopping)
    events.test_stop.add_listener(on_test_stopping)
    if isinstance(runner, WorkerRunner):
        events.report_to_master.add_listener(
            lambda client_id, data: data.update(lp_arrival=pacer_of(environment).counts())
            if pacer_of(environment) is not None else None
        )  # fmt: skip
    elif isinstance(runner, MasterRunner):
        events.worker_report.add_listener(
            lambda client_id, data: environment.lp_arrival_parts.__setitem__(client_id, data["lp_arrival"])
            if "lp_arrival" in data else None
        )  # fmt: skip


def section_of(environment: Environment) -> dict[str, Any] | None:
    """``summary.json``'s ``arrival`` (docs/summary-format.md); None in the closed model."""
    settings = state_of(environment).settings
    if settings is None or settings.arrival_rate is None:
        return None
    pacer = pacer_of(environment)
    parts = [pacer.counts()] if pacer is not None else list(getattr(environment, "lp_arrival_parts", {}).values())
    total = {k: sum(p[k] for p in parts) for k in ("planned", "due", "started", "dropped", "late", "peak_active")}
    duration = max((p["elapsed_s"] for p in parts), default=0.0)
    rate_from, rate_to = settings.arrival_rate
    late_ok = total["late"] <= LATE_TOLERANCE * max(total["started"], 1)
    kept = total["dropped"] == 0 and late_ok
    users = getattr(environment.runner, "target_user_count", None) or getattr(
        environment.parsed_options, "num_users", None
    )
    warning = None
    if total["dropped"]:
        warning = (
            f"the arrival rate was not kept: {total['dropped']} of {total['due']} arrivals found every user in a "
            f"session and were dropped ({users} users, at most {total['peak_active']} sessions at once): raise -u "
            "(the cap of sessions at once) or lower --lp-arrival-rate"
        )
    elif not late_ok:
        warning = (
            f"the arrival rate was not kept: {total['late']} of {total['started']} sessions started more than "
            f"{LATE_S * 1000:.0f} ms late: the load generator is too busy (add processes)"
        )
    return {
        "rate_from": rate_from,
        "rate_to": rate_to,
        "ramp_s": _ramp_of(environment),
        "processes": max(1, len(parts)),
        "users": users,
        "duration_s": round(duration, 3),
        "due": total["due"],
        "started": total["started"],
        "dropped": total["dropped"],
        "late": total["late"],
        "late_max_ms": round(max((p["late_max_ms"] for p in parts), default=0.0), 1),
        "target_rate": round(total["planned"] / duration, 3) if duration else None,
        "achieved_rate": round(total["started"] / duration, 3) if duration else None,
        "max_concurrent": total["peak_active"],
        "kept": kept,
        "warning": warning,
    }


def _ramp_of(environment: Environment) -> float | None:
    raw = str(getattr(environment.parsed_options, PLAN_OPTION, None) or "")
    _, _, ramp = raw.partition(",")
    return float(ramp) if ramp else None
