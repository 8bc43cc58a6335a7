"""The fault matrix: every fault kind the emulator offers, on every target of the flow it fits.

Each case is one emulator with one fault and one short real ``locust`` run against it (an
external target, so the harness's preflight sends one anonymous authorize first). All cases run
once, four at a time (each its own emulator and locust, stopped by PID), in a module fixture;
the tests then check every case's outcome:

- the phase (token/socket) and the one failure category the summary reports;
- the calls: steps + the cleanup's own calls + the preflight's = the ledger's ``received``, per
  target, and the pings sent and answered = the ledger's (``matrix.check_calls``/``check_pings``
  say where a count can only be bounded, and why);
- the ledger's injected faults = the harness's failures of that category (``matrix.check_faults``);
- the ledger balances: every request it read ended in exactly one of its outcomes;
- nothing left open on the emulator, and the summary's conversations are the ledger's;
- no traceback from either process.

Faults on the close are drawn with p < 1 where they are not processed (the cleanup's own close
gets the same draw: at p=1 it could never close), and anonymous-authorize's 4xx, malformed,
truncated, reset and hang at p=1 end the run at the preflight (exit 2): those have their own
cases, and p < 1 ones (the preflight spared by the seed) for what the sessions see.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from harness.emulator.faults import KINDS, category
from harness.reports import exitcodes
from harness.reports.loading import load_schema
from tests.user import matrix
from tests.user.matrix import AUTHORIZE, CLOSE, REQUEST, Case, Outcome

HTTP = ("--lp-http-timeout", "0.3")  # a hang or a late answer outlives it
CONNECT = ("--lp-connect-timeout", "0.3")
RETRIES = ("--lp-cleanup-attempts", "10")  # the cleanup's close is drawn too: 0.3**10 leaves one open in 170,000
T, S = "token", "socket"

CASES = [
    # the preflight's one anonymous authorize takes the first draw: what it does with each fault
    Case(AUTHORIZE, "status:503", T, "http 503"),  # warns and starts
    Case(AUTHORIZE, "status:429", T, "http 429"),  # warns and starts; Retry-After 1 s per user
    Case(AUTHORIZE, "slow:0.4", T, "timeout", extra=HTTP),  # the preflight waits 5 s: passes
    Case(AUTHORIZE, "status:401", "preflight"),
    Case(AUTHORIZE, "malformed", "preflight"),
    Case(AUTHORIZE, "truncated", "preflight"),
    Case(AUTHORIZE, "reset", "preflight"),
    Case(AUTHORIZE, "hang", "preflight"),  # no answer in the preflight's 5 s
    # ... and what the sessions see of those, the preflight spared by the seed
    Case(AUTHORIZE, "status:401", T, "http 401", p=0.5),
    Case(AUTHORIZE, "malformed", T, "bad json", p=0.5),
    Case(AUTHORIZE, "truncated", T, "bad json", p=0.5),
    Case(AUTHORIZE, "reset", T, "dropped", p=0.5),
    Case(AUTHORIZE, "hang", T, "timeout", p=0.5, extra=HTTP),
    Case("authenticate", "status:503", T, "http 503"),
    Case("authenticate", "status:429", T, "http 429"),
    Case("authenticate", "status:401", T, "http 401"),
    Case("authenticate", "hang", T, "timeout", extra=HTTP),
    Case("authenticate", "malformed", T, "bad json"),
    Case("authenticate", "truncated", T, "bad json"),
    Case("authenticate", "reset", T, "dropped"),
    Case("authenticate", "slow:0.4", T, "timeout", extra=HTTP),
    Case("authenticate", "slow:0.1", None),
    Case("connect", "status:503", S, "handshake 503"),
    Case("connect", "status:429", S, "handshake 429"),
    Case("connect", "status:401", S, "handshake 401"),
    Case("connect", "hang", S, "timeout", extra=CONNECT),
    Case("connect", "reset", S, "dropped"),
    Case("connect", "slow:0.4", S, "timeout", extra=CONNECT),
    Case(REQUEST, "hang", S, "timeout"),
    Case(REQUEST, "malformed", S, "bad json"),  # opened: the cleanup finds it and closes it
    Case(REQUEST, "truncated", S, "bad json"),
    Case(REQUEST, "reset", S, "dropped"),
    Case(REQUEST, "close:4401", S, "close 4401"),
    Case(REQUEST, "code:500", S, "resp 500"),  # an error answer opened nothing
    Case(REQUEST, "slow:0.8", S, "timeout"),  # opened, answered after the client gave up
    Case(CLOSE, "hang", S, "timeout", p=0.3, extra=RETRIES),
    Case(CLOSE, "malformed", S, "bad json"),  # closed: only the answer is broken
    Case(CLOSE, "truncated", S, "bad json"),
    Case(CLOSE, "reset", S, "dropped", p=0.3, extra=RETRIES),
    Case(CLOSE, "close:4401", S, "close 4401", p=0.3, extra=RETRIES),
    Case(CLOSE, "code:500", S, "resp 500", p=0.3, extra=RETRIES),
    # later than the 0.5 s request timeout, and than the 1.5 s a close gets once the run is stopping
    Case(CLOSE, "slow:1.6", S, "timeout"),
    Case("ping", "slow:0.5", S, "pong timeout"),  # the pong timeout is 0.25 s
    Case("ping", "slow:0.05", None),
    Case("ping", "no_pong", S, "pong timeout", p=0.3),
    Case("hold", "reset,after=0.3", S, "dropped"),
    Case("hold", "close:4401,after=0.3", S, "close 4401"),
    Case("hold", "close:4407,after=0.3", S, "close 4407"),
    Case("hold", "no_pong,after=0.1", S, "pong timeout"),
]
IDS = [case.id for case in CASES]
LOADED = [case for case in CASES if case.phase != "preflight"]
PREFLIGHT = [case for case in CASES if case.phase == "preflight"]
PARALLEL = 4


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome | BaseException]:
    """Every case run once, PARALLEL at a time: each its own emulator and its own locust process."""
    root = tmp_path_factory.mktemp("fault-matrix")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        # the longest first (the preflight's 5 s timeout, the stops that wait for closes), so none is last alone
        order = sorted(enumerate(CASES), key=lambda item: -matrix.expected_cost(item[1]))
        futures = {case.id: pool.submit(matrix.run_case, case, root / f"case-{i:02d}") for i, case in order}
        return {case_id: future.exception() or future.result() for case_id, future in futures.items()}


def outcome_of(outcomes: dict[str, Outcome | BaseException], case: Case) -> Outcome:
    """The case's outcome; a case whose run itself broke fails its own tests only."""
    found = outcomes[case.id]
    if isinstance(found, BaseException):
        raise AssertionError(f"case {case.id} did not run: {found!r}") from found
    return found


def checked(outcomes: dict[str, Outcome | BaseException], case: Case, *checks: Callable[[Outcome], None]) -> None:
    """Run ``checks`` on the case's outcome; a failure shows the run's numbers and output."""
    outcome = outcome_of(outcomes, case)
    try:
        for check in checks:
            check(outcome)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{outcome.describe()}") from None


def test_the_matrix_covers_every_kind_on_every_target_it_fits() -> None:
    targets = (AUTHORIZE, "authenticate", "connect", REQUEST, CLOSE, "ping", "hold")
    fits = {(t, kind) for t in targets for kind, (cats, _) in KINDS.items() if category(t) in cats}
    assert fits == {(case.target, case.kind) for case in CASES}
    assert len(IDS) == len(set(IDS)) >= 30


@pytest.mark.parametrize("case", LOADED, ids=[c.id for c in LOADED])
def test_phase_and_category(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    outcome = outcome_of(outcomes, case)
    assert outcome.summary is not None, outcome.describe()
    jsonschema.validate(outcome.summary, load_schema())
    expected = exitcodes.OK if case.phase is None else exitcodes.FAILURES
    assert outcome.returncode == expected, outcome.describe()
    checked(outcomes, case, matrix.check_phase)


@pytest.mark.parametrize("case", LOADED, ids=[c.id for c in LOADED])
def test_calls_and_pings_reconcile_with_the_ledger(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    checked(outcomes, case, matrix.check_calls, matrix.check_pings, matrix.check_ledger_balance)


@pytest.mark.parametrize("case", LOADED, ids=[c.id for c in LOADED])
def test_injected_faults_reconcile_with_the_failures(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    checked(outcomes, case, matrix.check_faults)


@pytest.mark.parametrize("case", LOADED, ids=[c.id for c in LOADED])
def test_nothing_is_left_open(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    checked(outcomes, case, matrix.check_clean)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_traceback(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    checked(outcomes, case, matrix.check_no_traceback)


@pytest.mark.parametrize("case", PREFLIGHT, ids=[c.id for c in PREFLIGHT])
def test_the_preflight_stops_a_run_it_cannot_authorize(
    outcomes: dict[str, Outcome | BaseException], case: Case
) -> None:
    """One line naming LP_IDP, exit 2, and no load: the ledger has the preflight's one request."""
    outcome = outcome_of(outcomes, case)
    assert outcome.returncode == exitcodes.ERROR, outcome.describe()
    lines = [line for line in outcome.output.splitlines() if "configuration error: LP_IDP" in line]
    assert len(lines) == 1, outcome.describe()
    endpoints = outcome.ledger["endpoints"]
    assert set(endpoints) == {AUTHORIZE} and endpoints[AUTHORIZE]["received"] == 1, endpoints
    assert endpoints[AUTHORIZE]["faults"] == {case.kind: 1}, endpoints
    assert outcome.ledger["sockets"]["accepted"] == 0


@pytest.mark.parametrize("status", [503, 429])
def test_a_throttled_or_failing_idp_at_the_preflight_warns_and_starts(
    outcomes: dict[str, Outcome | BaseException], status: int
) -> None:
    outcome = outcome_of(outcomes, Case(AUTHORIZE, f"status:{status}", T, f"http {status}"))
    assert f"answered HTTP {status} to one anonymous authorize" in outcome.output, outcome.describe()
    assert outcome.summary is not None
    assert outcome.summary["run"]["preflight"] == {AUTHORIZE: {"sent": 1, "ok": 0}}
