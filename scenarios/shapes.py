"""Scenario shapes, pickable in Locust's web UI: ``locust -f locustfile.py,scenarios/shapes.py --class-picker``.

Each shape takes the start form's users, spawn rate and run time (``use_common_options``) and shapes
them; the headless equivalents are the ``scenarios/<name>.conf`` profiles. The chosen shape's
scenario name is recorded in the run's reports. ``--lp-scenario spike|breakpoint|arrival`` runs its
shape without ``-f`` naming this file (harness/user/scenario.py); docs/shapes.md describes all three.
"""

from __future__ import annotations

import math

from locust import LoadTestShape

from harness.user import breakpoint
from harness.user.collect import current_summary
from harness.user.state import state_of


class _Scenario(LoadTestShape):
    abstract = True
    use_common_options = True
    scenario = "custom"

    def _options(self) -> tuple[int, float, float | None]:
        options = self.runner.environment.parsed_options
        if getattr(options, "lp_scenario", "custom") == "custom":
            options.lp_scenario = self.scenario  # recorded in summary.json
        users = int(options.num_users or 1)
        rate = float(options.spawn_rate or users)
        run_time = float(options.run_time) if getattr(options, "run_time", None) else None
        return users, rate, run_time

    def tick(self):  # noqa: ANN201 -- Locust's signature
        users, rate, run_time = self._options()
        now = self.get_run_time()
        if run_time is not None and now >= run_time:
            return None
        return self.users_at(now, users, rate, run_time), rate

    def users_at(self, now: float, users: int, rate: float, run_time: float | None) -> int:
        return users


class SmokeShape(_Scenario):
    """A few users (at most 5), all at once: every step exercised in seconds."""

    scenario = "smoke"

    def users_at(self, now: float, users: int, rate: float, run_time: float | None) -> int:
        return min(users, 5)


class LoadShape(_Scenario):
    """A staircase to the users in 4 equal steps over the first half of the run, then a plateau."""

    scenario = "load"
    steps = 4

    def users_at(self, now: float, users: int, rate: float, run_time: float | None) -> int:
        ramp = (run_time or 600.0) / 2
        step = min(self.steps, 1 + math.floor(now / (ramp / self.steps)))
        return max(1, round(users * step / self.steps))


class SoakShape(_Scenario):
    """Ramp at the spawn rate to the users and hold that plateau for the whole run."""

    scenario = "soak"


class SpikeShape(_Scenario):
    """A baseline, a sudden jump to the users, and back down to the baseline.

    ``baseline`` of the users (at least 1) from the start, ramped at the spawn rate; at ``jump_at``
    of the run time all of ``-u`` at once (spawn rate ``max(-r, -u)``: within a second), held until
    ``drop_at``, then back to the baseline as fast, until the end. Without a run time, 10 minutes.
    Subclass to change them (``class Spike10(SpikeShape): baseline = 0.1``).
    """

    scenario = "spike"
    baseline = 0.2  # share of -u before and after the spike
    jump_at = 0.3  # share of the run time when the spike starts ...
    drop_at = 0.6  # ... and ends

    def tick(self):  # noqa: ANN201 -- Locust's signature
        users, rate, run_time = self._options()
        now, length = self.get_run_time(), run_time or 600.0
        if run_time is not None and now >= run_time:
            return None
        low = max(1, round(users * self.baseline))
        if self.jump_at * length <= now < self.drop_at * length:
            return users, max(rate, float(users))
        return low, (rate if now < self.jump_at * length else max(rate, float(users)))


class BreakpointShape(_Scenario):
    """Steps of users up to ``-u`` until a threshold breaks in a step's own window; reports the knee.

    ``--lp-breakpoint-steps N`` steps (step k: k/N of -u, ramped at the spawn rate), each held
    ``--lp-breakpoint-step-time`` seconds (0: the run time / N) and judged at its end by the run's
    thresholds on that step alone (:mod:`harness.user.breakpoint`). The run stops at the first step
    that breaks, or after the top one; each step gets its whole length, so the run may outlast
    ``-t`` by the second a shape tick can be late per step.
    """

    scenario = "breakpoint"
    stepping: breakpoint.BreakpointRun | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.stepping = None  # a new test: new steps

    def tick(self):  # noqa: ANN201 -- Locust's signature
        users, rate, run_time = self._options()
        environment = self.runner.environment
        if self.stepping is None:
            self.stepping = breakpoint.plan(environment.parsed_options, users, run_time, owner=self)
            breakpoint.attach(environment, self.stepping)
        count = self.stepping.advance(
            self.get_run_time(), lambda: current_summary(environment), state_of(environment).rules
        )
        if count is None:
            breakpoint.end_run(environment, self.stepping)
            return None
        return count, rate


class ArrivalShape(_Scenario):
    """The open model: ``-u`` users, the cap of sessions at once, each session on an arrival at ``--lp-arrival-rate``.

    The users are spawned at the spawn rate (give a high one: arrivals start once all are spawned)
    and held for the run; sessions start at the asked rate however long each holds, so the sessions
    at once are a result (:mod:`harness.user.arrival`). Needs ``--lp-arrival-rate``.
    """

    scenario = "arrival"
