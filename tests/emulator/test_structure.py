"""The emulator's shared pieces: the fault ladder's steps and counting, the fast lane's route match, salvaged ids."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from harness.emulator import ladder
from harness.emulator.fastlane import FAST_ROUTES, raw_target_pattern
from harness.emulator.faults import FaultPlan, FaultSpec
from harness.emulator.ledger import TargetStats
from harness.protocol import paths
from tests.emulator.helpers import Client, lp_token


# ---------------------------------------------------------------------- the fast lane's one match
def test_raw_targets_match_each_fast_route_once() -> None:
    pattern, route_of = raw_target_pattern(FAST_ROUTES)
    for route in FAST_ROUTES:
        m = pattern.fullmatch(route.path(account="acc-1", connector="c9").encode())
        assert m is not None, route
        found, group = route_of[m.lastgroup]
        assert found is route and m.group(group) == b"acc-1"
    for other in (
        paths.SIGNUP.path(account="a"),
        paths.csds_path("a", "idp"),
        paths.AUTHENTICATE.path(account="a%20b"),  # percent-encoded: aiohttp decodes it, not the fast lane
        paths.AUTHENTICATE.path(account="a") + "/",
        "/admin/ledger",
    ):
        assert pattern.fullmatch(other.partition("?")[0].encode()) is None, other


# ---------------------------------------------------------------------- the ladder
class Recorder(ladder.Exchange[str]):
    """An exchange that says which step ran, with what."""

    __slots__ = ("calls", "live")

    def __init__(self, target: str, stats: TargetStats, live: bool = True) -> None:
        super().__init__(target, stats, 0.0)
        self.calls: list[tuple[Any, ...]] = []
        self.live = live

    def alive(self) -> bool:
        return self.live

    async def answer(self, injected: float) -> str:
        self.calls.append(("answer", round(injected, 3)))
        return "answer"

    async def status(self, status: int, message: str, fault: FaultSpec, injected: float) -> str:
        self.calls.append(("status", status, message, round(injected, 3)))
        return "status"

    async def code(self, code: int, message: str, injected: float) -> str:
        self.calls.append(("code", code, message))
        return "code"

    async def mangle(self, truncated: bool, injected: float) -> str:
        self.calls.append(("truncated" if truncated else "malformed",))
        return "mangled"

    async def hang(self, seconds: float) -> str:
        self.calls.append(("hang", seconds))
        return "hang"

    async def reset(self) -> str:
        self.calls.append(("reset",))
        return "reset"

    async def close(self, code: int) -> str:
        self.calls.append(("close", code))
        return "close"

    async def no_pong(self) -> str:
        self.calls.append(("no_pong",))
        return "no_pong"


def _run(plan: dict[str, Any], target: str = "GetClock", live: bool = True) -> tuple[Recorder, Any]:
    exchange = Recorder(target, TargetStats(), live)
    result = asyncio.run(ladder.run(exchange, FaultPlan.from_json(plan)))
    return exchange, result


@pytest.mark.parametrize(
    ("target", "fault", "call"),
    [
        ("csds", "status:502", ("status", 502, "injected 502", 0.0)),
        ("GetClock", "code:503,message=busy", ("code", 503, "busy")),
        ("GetClock", "malformed", ("malformed",)),
        ("csds", "truncated", ("truncated",)),
        ("connect", "hang:7", ("hang", 7.0)),
        ("connect", "reset", ("reset",)),
        ("GetClock", "close:4407", ("close", 4407)),
        ("ping", "no_pong", ("no_pong",)),
    ],
)
def test_each_fault_kind_has_its_step(target: str, fault: str, call: tuple[Any, ...]) -> None:
    exchange, result = _run({"faults": {target: fault}}, target)
    assert exchange.calls == [call] and result == call[0].replace("truncated", "mangled").replace(
        "malformed", "mangled"
    )
    assert exchange.stats.faults == {fault.split(":")[0].split(",")[0]: 1}


def test_slow_is_counted_when_drawn_and_answers_normally_late() -> None:
    exchange, result = _run({"latency": {"csds": "10"}, "faults": {"csds": "slow:0.02"}}, "csds")
    assert result == "answer" and exchange.calls == [("answer", 0.03)]  # latency and slow add up
    assert exchange.stats.faults == {"slow": 1}


def test_a_fault_after_latency_is_applied_and_counted_only_if_the_peer_is_still_there() -> None:
    exchange, _ = _run({"latency": {"GetClock": "10"}, "faults": {"GetClock": "close:4401"}})
    assert exchange.calls == [("close", 4401)] and exchange.stats.faults == {"close": 1}
    gone, result = _run({"latency": {"GetClock": "10"}, "faults": {"GetClock": "close:4401"}}, live=False)
    assert result is None and gone.calls == [] and gone.stats.faults == {}


def test_latency_alone_is_a_late_normal_answer() -> None:
    exchange, result = _run({"latency": {"GetClock": "15"}})
    assert result == "answer" and exchange.calls == [("answer", 0.015)] and exchange.stats.faults == {}


# ---------------------------------------------------------------------- salvaged request ids
def test_an_unreadable_request_is_answered_under_the_id_in_its_text(emu) -> None:
    client = Client(emu.url, lp_token(emu.url))
    for frame, req_id in (('{"kind":"req","id":"x9","type":', "x9"), ('junk "id": 42 junk', "42"), ("{", "0")):
        client.ws.send(frame)
        resp = client.recv_json()
        assert resp["code"] == 400 and resp["reqId"] == req_id and resp["body"].startswith("malformed"), frame
    client.close()
    assert json.dumps(emu.ledger()["endpoints"]["malformed"]["errors"]) == '{"400": 3}'


# ---------------------------------------------------------------------- the layout the docs describe
def test_docs_layout_lists_every_module_and_imports_go_down_it() -> None:
    from tests.test_architecture import ROOT, build_graph

    graph = build_graph(ROOT)
    text = (ROOT / "docs" / "emulator.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout") : text.index("## Options")]
    rows = [re.findall(r"`(\w+)\.py`", line.split("|")[1]) for line in section.splitlines() if line.startswith("| `")]
    rank = {f"harness.emulator.{name}": i for i, names in enumerate(rows) for name in names}
    modules = set(graph.under("harness.emulator")) - {"harness.emulator"}
    assert set(rank) == modules, "docs/emulator.md's layout table and harness/emulator/ list different modules"
    upward = [
        f"{m} -> {t}" for m in sorted(modules) for t in sorted(graph.imports(m)) if t in rank and rank[t] < rank[m]
    ]
    assert not upward, "imports that go up the layout table:\n" + "\n".join(upward)
