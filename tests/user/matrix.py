"""The fault matrix's machinery: one case = one emulator + one short real ``locust`` run.

A :class:`Case` is one fault kind on one target (docs/emulator.md, "Latency and faults"). Where a
fault has p < 1 its seed is chosen here, through the emulator's own :class:`FaultPlan`, so that the
first draws go the way the case needs (e.g. the preflight's anonymous authorize -- the target's
first draw -- is spared, and the first session call is hit): the run is then deterministic in what
it starts with, whatever the interleaving later.

The ``check_*`` functions hold the rules that tie the harness's summary to the emulator's ledger;
where a count cannot be exact, the bound asserted instead says why beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.emulator.faults import parse_cli
from harness.emulator.launcher import EmulatorProcess
from harness.emulator.ledger import unaccounted
from harness.protocol.messages import MessageType
from harness.user.steps import Step
from tests.user.runs import QUICK, run_locust

AUTHORIZE = "anonymous-authorize"
REQUEST = MessageType.REQUEST_CONVERSATION
CLOSE = MessageType.UPDATE_CONVERSATION_FIELD
SUBSCRIBE = MessageType.SUBSCRIBE_EX_CONVERSATIONS
# ledger target -> the step that calls it (None: only the cleanup does)
STEP_OF: dict[str, str | None] = {
    AUTHORIZE: Step.ANONYMOUS_AUTHORIZE,
    "authenticate": Step.AUTHENTICATE,
    "connect": Step.CONNECT,
    REQUEST: Step.REQUEST_CONVERSATION,
    CLOSE: Step.CLOSE_CONVERSATION,
    SUBSCRIBE: None,
}
FRAME_TARGETS = (REQUEST, CLOSE, SUBSCRIBE)
KNOWN_TARGETS = {*STEP_OF, "ping", "hold"}
RUN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Case:
    """One fault on one target, what the harness must report for it, and the run's options."""

    target: str
    fault: str  # KIND[:MAIN][,key=value...] without p
    phase: str | None  # "token" / "socket": where sessions fail; None: nothing fails; "preflight": exit 2
    category: str | None = None
    p: float = 1.0
    extra: tuple[str, ...] = ()  # locust options on top of QUICK
    emulator: tuple[str, ...] = ()  # emulator options on top of the fault

    @property
    def kind(self) -> str:
        return self.fault.partition(",")[0].partition(":")[0]

    @property
    def id(self) -> str:
        chance = "" if self.p == 1 else f",p={self.p:g}"
        tail = f" {' '.join(self.extra)}" if self.extra else ""
        return f"{self.target}={self.fault}{chance}{tail}"

    @property
    def spec(self) -> str:
        return self.fault if self.p == 1 else f"{self.fault},p={self.p:g}"

    @property
    def wanted_draws(self) -> tuple[bool, ...]:
        """How the target's first draws must fall (True: faulted) for the run to test the fault.

        The preflight is the first anonymous authorize: spared, then the first session's is hit.
        Elsewhere the first call is hit, so a short run always sees the fault at least once.
        """
        return (False, True) if self.target == AUTHORIZE else (True,)

    @property
    def seed(self) -> int | None:
        return None if self.p == 1 else seed_for(self.target, self.spec, self.wanted_draws)

    def emulator_args(self) -> list[str]:
        seed = self.seed
        return [
            *(["--seed", str(seed)] if seed is not None else []),
            "--fault",
            f"{self.target}={self.spec}",
            *self.emulator,
        ]

    def preflight_faulted(self) -> int:
        """1 when the preflight's anonymous authorize (the target's first draw) got the fault."""
        if self.target != AUTHORIZE:
            return 0
        plan = parse_cli([], [f"{self.target}={self.spec}"], self.seed)
        return int(plan.decide(self.target)[1] is not None)


def seed_for(target: str, spec: str, draws: tuple[bool, ...]) -> int:
    """The smallest seed whose first draws for ``target`` fault (True) or not as ``draws`` says."""
    for seed in range(1, 10_000):
        plan = parse_cli([], [f"{target}={spec}"], seed)
        if all((plan.decide(target)[1] is not None) is wanted for wanted in draws):
            return seed
    raise AssertionError(f"no seed gives {draws} for {target}={spec}")


@dataclass
class Outcome:
    """What one case's run left behind."""

    case: Case
    returncode: int
    output: str
    summary: dict[str, Any] | None
    ledger: dict[str, Any]
    emulator_log: str
    wall_s: float

    def describe(self) -> str:
        """Enough to see what went wrong without rerunning."""
        s = self.summary or {}
        c = s.get("conversations", {})
        return "\n".join(
            [
                f"case {self.case.id}: rc {self.returncode}, {self.wall_s:.1f} s",
                f"phases {s.get('phases')}",
                f"steps { ({k: (v['count'], v['failures']) for k, v in s.get('steps', {}).items()}) }",
                f"cleanup {c.get('cleanup')} left_open {c.get('left_open')} preflight {s.get('run', {}).get('preflight')}",
                f"pings {s.get('pings')} sockets {s.get('sockets')}",
                "ledger "
                + str(
                    {k: (v["received"], v["ok"], v["errors"], v["faults"]) for k, v in self.ledger["endpoints"].items()}
                ),
                f"ledger sockets {self.ledger['sockets']} conversations {self.ledger['conversations']}",
                f"ledger pings {self.ledger['pings']}",
                "output tail:\n" + self.output[-1500:],
            ]
        )


def expected_cost(case: Case) -> int:
    """A rough order of how long a case's run takes, to start the longest first."""
    if case.phase == "preflight":
        return 2 if case.kind == "hang" else -1  # the preflight's 5 s timeout; else no load at all
    return 1 if case.target in (CLOSE, "hold") or case.kind == "hang" else 0


def run_case(case: Case, folder: Path) -> Outcome:
    """The case's emulator (stopped by PID on the way out) and one short locust run against it."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "emulator.log"
    started = time.monotonic()
    with log_path.open("w") as stderr, EmulatorProcess(case.emulator_args(), stderr=stderr) as emu:
        run = run_locust([*QUICK, *case.extra], folder / "reports", target=emu.url, timeout=RUN_TIMEOUT_S)
        ledger = emu.ledger()
    reports = folder / "reports"
    has_summary = reports.is_dir() and any((p / "summary.json").is_file() for p in reports.iterdir())
    return Outcome(
        case,
        run.returncode,
        run.output,
        run.summary if has_summary else None,
        ledger,
        log_path.read_text(),
        time.monotonic() - started,
    )


# ---------------------------------------------------------------------- what the harness counted
def _steps(summary: dict[str, Any], step: str | None) -> dict[str, int]:
    entry = summary["steps"].get(step or "", {})
    return {"count": int(entry.get("count", 0)), "failures": int(entry.get("failures", 0))}


def server_ended(summary: dict[str, Any]) -> int:
    """Failures, in the sessions and in the cleanup's tries, that a server close or a reset ended.

    Each may stand for a call the server never read: sent while the server's close frame or reset
    was on its way (RFC 6455 lets the closing side discard it, and aiohttp's close does), or not
    sent at all because the client had already seen the socket end and failed the step at once.
    """
    counts = dict(summary["phases"]["socket"]["categories"])
    for category, n in summary["conversations"]["cleanup"]["failures"].items():
        counts[category] = counts.get(category, 0) + n
    return sum(n for c, n in counts.items() if c.startswith("close ") or c == "dropped")


def calls_by_target(summary: dict[str, Any]) -> dict[str, int]:
    """Every call the harness made, by ledger target: the steps, the cleanup's, the preflight's."""
    cleanup_calls = summary["conversations"]["cleanup"]["calls"]
    preflight = summary["run"].get("preflight") or {}
    return {
        target: _steps(summary, step)["count"]
        + int(cleanup_calls.get(target, 0))
        + int(preflight.get(target, {}).get("sent", 0))
        for target, step in STEP_OF.items()
    }


def _received(ledger: dict[str, Any], target: str) -> int:
    return int(ledger["endpoints"].get(target, {}).get("received", 0))


def _faults(ledger: dict[str, Any], target: str, kind: str) -> int:
    return int(ledger["endpoints"].get(target, {}).get("faults", {}).get(kind, 0))


def check_calls(outcome: Outcome) -> None:
    """Steps + cleanup + preflight = the ledger's ``received``, per target.

    Exact for the IDP and the handshake. The server may not have read a frame call that failed
    when a server close or reset ended its socket (:func:`server_ended`): the ledger may count up to
    one fewer per such failure, and never more than the calls of that target that failed (its
    step's failures and the cleanup's failed tries). With no such failure (every case but the
    server-side closes and resets) the bound is the exact equality.
    """
    summary, ledger = outcome.summary, outcome.ledger
    assert summary is not None
    unknown = set(ledger["endpoints"]) - KNOWN_TARGETS
    assert not unknown, f"the ledger saw calls no step or cleanup makes: {unknown}"
    ended = server_ended(summary)
    cleanup_failed = sum(summary["conversations"]["cleanup"]["failures"].values())
    for target, calls in calls_by_target(summary).items():
        received = _received(ledger, target)
        if target in FRAME_TARGETS:
            slack = min(ended, _steps(summary, STEP_OF[target])["failures"] + cleanup_failed)
            assert calls - slack <= received <= calls, (target, calls, slack, received)
        else:
            assert received == calls, (target, calls, received)


def check_pings(outcome: Outcome) -> None:
    """The pings the harness sent and had answered against the emulator's.

    - ``received``: a ping written while the server's close frame or reset was on its way is never
      read by the server; the client reads the server's end within one ping interval, so at most
      one per socket the server ended (its close frames and the drops).
    - ``ponged``: a pong on its way when the client aborted the socket for a lost pong is never
      read, at most one per pong timeout; every other pong written is counted as answered.
    - every answered pong and every pong timeout is one ``ping`` step.
    """
    summary, ledger = outcome.summary, outcome.ledger
    assert summary is not None
    pings, sockets = summary["pings"], summary["sockets"]
    ended_by_server = sum(sockets["server_closes"].values()) + sockets["drops"]
    assert pings["sent"] - ended_by_server <= ledger["pings"]["received"] <= pings["sent"], (pings, ledger["pings"])
    assert pings["answered"] <= ledger["pings"]["ponged"] <= pings["answered"] + pings["timeouts"], (
        pings,
        ledger["pings"],
    )
    assert _received(ledger, "ping") == ledger["pings"]["received"]
    assert _steps(summary, Step.PING)["count"] == pings["answered"] + pings["timeouts"], (summary["steps"], pings)


def check_phase(outcome: Outcome) -> None:
    """Sessions fail in the case's phase, all with its one category, and in no other phase."""
    case, summary = outcome.case, outcome.summary
    assert summary is not None
    phases = summary["phases"]
    for name, counts in phases.items():
        if name == case.phase:
            assert set(counts["categories"]) == {case.category}, (name, counts)
            assert counts["failures"] == counts["categories"][case.category] > 0, (name, counts)
        else:
            assert counts["failures"] == 0 and not counts["categories"], (name, counts)


def check_faults(outcome: Outcome) -> None:
    """The ledger's injected faults of the case's kind against the harness's failures of its category."""
    case, summary, ledger = outcome.case, outcome.summary, outcome.ledger
    assert summary is not None
    kind, category = case.kind, case.category
    faults = _faults(ledger, case.target, kind)
    phase = summary["phases"]["socket"]
    failed = phase["categories"].get(category, 0) if category else 0
    cleanup = summary["conversations"]["cleanup"]
    cleanup_failed = int(cleanup["failures"].get(category, 0)) if category else 0
    succeeded = phase["sessions"] - phase["failures"] - phase["interrupted"]
    pings = summary["pings"]
    assert faults > 0, f"the fault never fired:\n{outcome.describe()}"
    if case.target == "hold":
        if kind == "no_pong":
            # A socket whose pongs stop fails with "pong timeout" unless it ends first: the stop cut
            # its hold short, or it was one of the cleanup's short visits (both counted when it fires).
            assert pings["timeouts"] == failed <= faults <= failed + succeeded + cleanup["attempts"], (faults, pings)
            assert ledger["pings"]["withheld"] <= pings["sent"] - pings["answered"]
        else:
            # Each fired close/reset ends one session (or one cleanup try) with its category; one that
            # fires while the client's own close frame is on its way ends a session the client
            # counts as clean (at most every session that succeeded).
            assert failed + cleanup_failed <= faults <= failed + cleanup_failed + succeeded, (faults, failed)
        return
    if case.target == "ping":
        if kind == "no_pong" or case.phase:
            # Every pong timeout is one withheld (or too late) pong; more may be withheld on a socket
            # already failing, and none of those was answered.
            assert pings["timeouts"] == failed <= faults <= pings["sent"] - pings["answered"], (faults, pings)
        else:  # a pong late but within the timeout: every ping was hit, none failed
            assert faults == _received(ledger, "ping") and pings["timeouts"] == 0
        return
    step = _steps(summary, STEP_OF[case.target])
    everything = case.p == 1  # every call to the target was hit, also the cleanup's and the preflight's
    step_hit = step["count"] if everything else step["failures"]
    cleanup_hit = int(cleanup["calls"].get(case.target, 0)) if everything else cleanup_failed
    assert faults == step_hit + cleanup_hit + case.preflight_faulted(), (faults, step, cleanup)
    if case.phase is None:  # the fault is harmless at these timeouts: nothing failed
        assert step["failures"] == 0
        return
    # every hit call failed its step, and its session with the case's category (a close that timed
    # out after the stop began is "interrupted", not a failure: metrics.PhaseCounts)
    assert step["failures"] == step_hit, (step, step_hit)
    interrupted = phase["interrupted"] if case.phase == "socket" else 0
    assert summary["phases"][case.phase]["categories"][category] + interrupted == step["failures"], summary["phases"]


def check_ledger_balance(outcome: Outcome) -> None:
    """Every request the emulator read ended in exactly one of its outcomes (nothing is in flight now)."""
    unsettled = {t: unaccounted(e) for t, e in outcome.ledger["endpoints"].items() if unaccounted(e)}
    assert not unsettled, unsettled
    pings, gone = outcome.ledger["pings"], outcome.ledger["endpoints"].get("ping", {}).get("gone", 0)
    assert pings["received"] == pings["ponged"] + pings["withheld"] + gone, (pings, gone)


def check_clean(outcome: Outcome) -> None:
    """Nothing open on the emulator after the stop, the summary's conversations are the ledger's."""
    summary, ledger = outcome.summary, outcome.ledger
    assert summary is not None
    assert ledger["conversations"]["open"] == 0 and ledger["sockets"]["open"] == 0, (
        ledger["conversations"],
        ledger["sockets"],
    )
    ours = summary["conversations"]
    assert ours["left_open"] == 0 and ours["open"] == 0 and ours["cleanup"]["unconfirmed"] == 0, ours
    assert (ours["opened"], ours["closed"]) == (ledger["conversations"]["opened"], ledger["conversations"]["closed"])
    # each closed one was closed by its session's own close (a close-conversation step that
    # succeeded) or by the cleanup (which found it left open by a failed socket)
    close = _steps(summary, Step.CLOSE_CONVERSATION)
    assert ours["closed"] == close["count"] - close["failures"] + ours["closed_by_cleanup"], (ours, close)
    assert summary["sockets"]["open"] == 0


def check_no_traceback(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    assert "Traceback" not in outcome.emulator_log, outcome.emulator_log[-3000:]
