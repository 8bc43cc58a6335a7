"""The breakpoint test: steps of users until a threshold breaks, and the knee -- the last step that held.

:class:`BreakpointRun` is what ``scenarios/shapes.py``'s ``BreakpointShape`` drives: step ``k`` of
``N`` runs ``round(k * users / N)`` users for ``step_s`` seconds; at its end the run's threshold
rules (``--lp-threshold``, ``--lp-thresholds``) are judged on that step's own window
(:func:`harness.reports.window.window_summary`: the run's summary at the step's end minus the one
at its start), never on the run so far, so a good start cannot hide a bad step. The first step
that breaks a rule stops the run (end reason ``breakpoint``); if none breaks up to ``-u``, the knee
is the top step ("never broke"). ``summary.json``'s ``breakpoint`` section lists every step tried;
the exit code is 0 when a knee was found (that is the test's purpose) and 3 when not even the first
step held (docs/shapes.md, "Breakpoint").

Pure but for the clock and the summaries it is handed, so the stepping is testable without Locust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from locust.env import Environment

from harness.reports.thresholds import Rule, RuleResult, evaluate
from harness.reports.window import window_summary
from harness.user.state import state_of

log = logging.getLogger("lp-harness")
DEFAULT_STEP_S = 60.0  # a step's length when neither --lp-breakpoint-step-time nor a run time says
MIN_JUDGED_SHARE = 0.5  # a last step cut shorter than this share of its length by the run's end is not judged
Snapshot = Callable[[], dict[str, Any]]


@dataclass
class Step:
    """One step tried: its users, its window (seconds into the run) and how it fared."""

    number: int
    users: int
    from_s: float
    to_s: float | None = None
    status: str = "running"  # running | held | broke | cut short
    cut_short: bool = False  # judged on less than its full length (the run ended in it)
    broken: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        window = None if self.to_s is None else round(self.to_s - self.from_s, 3)
        return {
            "step": self.number,
            "users": self.users,
            "from_s": round(self.from_s, 3),
            "to_s": None if self.to_s is None else round(self.to_s, 3),
            "window_s": window,
            "status": self.status,
            "held": self.status == "held",
            "cut_short": self.cut_short,
            "broken": self.broken,
        }


def _broken(result: RuleResult) -> dict[str, Any]:
    entry = result.to_dict()
    return {k: entry[k] for k in ("rule", "metric", "value", "limit", "message")}


class BreakpointRun:
    """The steps of one breakpoint test, driven by its shape's ticks (:meth:`advance`)."""

    def __init__(self, steps: int, step_s: float, max_users: int, owner: object = None) -> None:
        self.planned = max(1, steps)
        self.step_s = step_s
        self.max_users = max(1, max_users)
        self.owner = owner  # the shape instance this run belongs to (a later test's shape is another)
        self.steps: list[Step] = []
        self.rules: list[str] = []
        self._before: dict[str, Any] | None = None  # the summary at the running step's start
        self.done = False

    def users_of(self, number: int) -> int:
        return max(1, round(self.max_users * number / self.planned))

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps and self.steps[-1].status == "running" else None

    def advance(self, now_s: float, snapshot: Snapshot, rules: Sequence[Rule]) -> int | None:
        """The users for ``now_s`` seconds into the run, or None: stop (a step broke, or the last one held)."""
        if self.done:
            return None
        current = self.current
        if current is None:  # the first tick: step 1 starts from the run's start (nothing before it)
            return self._open(1, 0.0)
        if now_s - current.from_s < self.step_s:  # each step its full length, however late a tick came
            return current.users
        summary = snapshot()
        if not self._judge(current, now_s, summary, rules, final=False):
            return self._finish()
        if current.number >= self.planned:
            return self._finish()
        self._before = summary
        return self._open(current.number + 1, now_s)

    def finish_at_end(self, now_s: float, summary: dict[str, Any], rules: Sequence[Rule]) -> None:
        """The run ended inside a step (its time limit, a stop): judge that step on what it had."""
        current = self.current
        if current is None or self.done:
            return
        self._judge(current, now_s, summary, rules, final=True)
        self.done = True

    def _open(self, number: int, from_s: float) -> int:
        step = Step(number, self.users_of(number), from_s)
        self.steps.append(step)
        log.info("breakpoint: step %d of %d, %d users for %.0f s", number, self.planned, step.users, self.step_s)
        return step.users

    def _judge(self, step: Step, now_s: float, summary: dict[str, Any], rules: Sequence[Rule], *, final: bool) -> bool:
        """Close ``step`` at ``now_s`` on its own window; False when a rule broke in it."""
        step.to_s = now_s
        self.rules = [r.name for r in rules]
        if final and now_s - step.from_s < MIN_JUDGED_SHARE * self.step_s:
            step.status = "cut short"
            return True
        step.cut_short = now_s - step.from_s < self.step_s * 0.95
        window = window_summary(self._before, summary, from_s=step.from_s, to_s=now_s, users=step.users)
        failed = [r for r in evaluate(rules, window, final=False).results if r.status == "fail"]
        step.broken = [_broken(r) for r in failed]
        step.status = "broke" if failed else "held"
        if failed:
            reasons = "; ".join(f"{r.rule.name} ({r.message})" for r in failed)
            knee = self.knee()
            where = f"step {knee.number}, {knee.users} users" if knee else "none: not even the first step held"
            log.warning(
                "breakpoint: step %d (%d users) broke %s; the knee: %s", step.number, step.users, reasons, where
            )
        return not failed

    def _finish(self) -> None:
        self.done = True
        if not any(s.status == "broke" for s in self.steps):
            log.info("breakpoint: every step held up to %d users: never broke", self.steps[-1].users)
        return None

    def knee(self) -> Step | None:
        """The last step that held its whole window before the first that broke."""
        knee = None
        for step in self.steps:
            if step.status == "broke":
                break
            if step.status == "held" and not step.cut_short:
                knee = step
        return knee

    def verdict(self) -> str:
        """running | knee | no step held | never broke | incomplete (the run ended before the top step)."""
        if any(s.status == "broke" for s in self.steps):
            return "knee" if self.knee() is not None else "no step held"
        if not self.done:
            return "running"
        top = self.knee()
        return "never broke" if top is not None and top.number == self.planned else "incomplete"

    def section(self) -> dict[str, Any]:
        """``summary.json``'s ``breakpoint`` (docs/summary-format.md)."""
        knee = self.knee()
        broke = next((s for s in self.steps if s.status == "broke"), None)
        return {
            "verdict": self.verdict(),
            "steps_planned": self.planned,
            "step_s": self.step_s,
            "max_users": self.max_users,
            "rules": self.rules,
            "knee_users": knee.users if knee else None,
            "knee_step": knee.number if knee else None,
            "broke_at_users": broke.users if broke else None,
            "broken_by": broke.broken if broke else [],
            "steps": [s.to_dict() for s in self.steps],
        }


# ---------------------------------------------------------------------------- on the coordinator
def plan(options: Any, users: int, run_time: float | None, owner: object) -> BreakpointRun:
    """The steps ``--lp-breakpoint-steps``/``--lp-breakpoint-step-time`` ask for (read before the settings
    are checked at the test's start: a bad value takes the default here, and the check then stops the run)."""
    try:
        steps = max(1, int(getattr(options, "lp_breakpoint_steps", 10)))
        step_s = max(0.0, float(getattr(options, "lp_breakpoint_step_time", 0) or 0))
    except (TypeError, ValueError):
        steps, step_s = 10, 0.0
    step_s = step_s or (run_time / steps if run_time else DEFAULT_STEP_S)
    return BreakpointRun(steps, step_s, users, owner=owner)


def attach(environment: Environment, run: BreakpointRun) -> None:
    """This test's breakpoint run: the one the summary reports (see :func:`section_of`)."""
    environment.lp_breakpoint = run


def end_run(environment: Environment, run: BreakpointRun) -> None:
    """The shape stops the run: say why in the reports (a broken step, or every step held)."""
    state = state_of(environment)
    if state.end_reason is None:
        state.end_reason = "breakpoint" if run.verdict() in ("knee", "no step held") else "completed"


def section_of(environment: Environment, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The ``breakpoint`` section of this run's summary; None unless this run's shape is a breakpoint.

    Once the run has ended, a step still running is judged on what it had (``summary``).
    """
    run = run_of(environment)
    if run is None:
        return None
    state = state_of(environment)
    if state.ended_at is not None and not run.done and run.current is not None:
        clock = getattr(run.owner, "get_run_time", None)
        now_s = float(clock()) if callable(clock) else run.current.from_s
        run.finish_at_end(now_s, summary, state.rules)
    return run.section()


def run_of(environment: Environment) -> BreakpointRun | None:
    """This test's breakpoint run; None unless this test's shape is the one the run belongs to."""
    run: BreakpointRun | None = getattr(environment, "lp_breakpoint", None)
    if run is None or run.owner is not getattr(environment, "shape_class", None):
        return None
    return run


def live_section(environment: Environment) -> dict[str, Any] | None:
    """The ``breakpoint`` section so far, for the web UI's tab: read only (no step is closed here)."""
    run = run_of(environment)
    return None if run is None else run.section()
