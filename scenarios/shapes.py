"""Scenario shapes, pickable in Locust's web UI: ``locust -f locustfile.py,scenarios/shapes.py --class-picker``.

Each shape takes the start form's users, spawn rate and run time (``use_common_options``) and shapes
them; the headless equivalents are the ``scenarios/<name>.conf`` profiles. The chosen shape's
scenario name is recorded in the run's reports.
"""

from __future__ import annotations

import math

from locust import LoadTestShape


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
