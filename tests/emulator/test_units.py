"""The emulator's plain-Python parts: fault/latency syntax, draws, histogram, ledger merging."""

from __future__ import annotations

import random

import pytest

from harness.emulator.faults import ConfigError, FaultPlan, LatencySpec, fault_from_text, latency_from_text, parse_cli
from harness.emulator.ledger import Histogram, Ledger, bucket_ms, merge_snapshots


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("20", LatencySpec(20.0)),
        ("0.5s", LatencySpec(500.0)),
        ("5+uniform:10", LatencySpec(5.0, "uniform", 10.0)),
        ("5+normal:2ms", LatencySpec(5.0, "normal", 2.0)),
        ("1+lognormal:8:0.7", LatencySpec(1.0, "lognormal", 8.0, 0.7)),
        ("+lognormal:8", LatencySpec(0.0, "lognormal", 8.0, 0.5)),
    ],
)
def test_latency_syntax(text: str, spec: LatencySpec) -> None:
    assert latency_from_text(text) == spec


@pytest.mark.parametrize("text", ["abc", "5+gamma:1", "5+uniform", "5+uniform:1:2", "-3", "5+lognormal:1:x"])
def test_latency_syntax_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        latency_from_text(text)


def test_latency_samples_stay_in_range() -> None:
    rng = random.Random(1)
    uniform = LatencySpec(5.0, "uniform", 10.0)
    assert all(0.005 <= uniform.sample_s(rng) <= 0.015 for _ in range(200))
    normal = LatencySpec(0.0, "normal", 5.0)
    assert all(normal.sample_s(rng) >= 0 for _ in range(200))
    lognormal = LatencySpec(0.0, "lognormal", 10.0, 0.5)
    samples = sorted(lognormal.sample_s(rng) for _ in range(501))
    assert 0.007 < samples[250] < 0.013  # the median is the given one


def test_fault_syntax() -> None:
    spec = fault_from_text("status:429,retry_after=2,p=0.25")
    assert (spec.kind, spec.p, spec.get("status"), spec.get("retry_after")) == ("status", 0.25, 429, 2.0)
    assert fault_from_text("close:4407,after=30s").to_json() == {"kind": "close", "p": 1.0, "code": 4407, "after": 30.0}
    assert fault_from_text("no_pong").get("after") == 0.0
    assert fault_from_text("hang").get("seconds") == 600.0
    for bad in (
        "nope",
        "status:abc",
        "status:200",
        "code:200",
        "malformed:1",
        "status,p=2",
        "status,bogus=1",
        "close:5000",
    ):
        with pytest.raises(ConfigError):
            fault_from_text(bad)


def test_plan_decisions_and_wildcards() -> None:
    plan = parse_cli(["authenticate=10"], ["*=status:500,p=1", "GetClock=code:503"], seed=5)
    assert plan.decide("authenticate") == (0.01, plan.faults["*"][0])
    assert plan.decide("csds")[1].kind == "status"
    assert plan.decide("GetClock")[1].get("code") == 503
    assert plan.decide("cm.ConsumerRequestConversation") == (0.0, None)  # status does not fit frames
    assert not plan.has_any("ping")
    with pytest.raises(ConfigError):
        FaultPlan.from_json({"faults": {"ping": "status:500"}})


def test_same_seed_same_draws_per_target() -> None:
    def draws(seed: int) -> list[bool]:
        plan = FaultPlan.from_json({"seed": seed, "faults": {"authenticate": "status:503,p=0.5"}})
        return [plan.decide("authenticate")[1] is not None for _ in range(50)]

    assert draws(1) == draws(1) != draws(2)
    assert FaultPlan.from_json({"seed": 1}).with_worker(2).seed == 1002


def test_bucket_rounding_two_significant_digits() -> None:
    assert [bucket_ms(x) for x in (0.0437, 1.234, 15.6, 156, 1234, 0)] == [0.044, 1.2, 16, 160, 1200, 0]


def test_histogram_percentiles() -> None:
    h = Histogram()
    for ms in range(1, 101):
        h.add(float(ms))
    s = h.summary()
    assert s["count"] == 100 and s["mean"] == 50.5 and s["max"] == 100
    assert s["p50"] == 50 and s["p90"] == 90 and s["p99"] == 99


def test_merge_snapshots_sums_everything() -> None:
    a, b = Ledger(), Ledger()
    for ledger, n in ((a, 2), (b, 3)):
        stats = ledger.target("authenticate")
        for _ in range(n):
            stats.received += 1
            stats.ok += 1
            stats.timing(0.002, 0.001)
        stats.error(401)
        ledger.socket_opened()
        ledger.server_close(4401)
    b.target("csds").received += 1
    merged = merge_snapshots([a.snapshot(), b.snapshot()])
    auth = merged["endpoints"]["authenticate"]
    assert auth["received"] == 5 and auth["errors"] == {"401": 2}
    assert auth["latency_ms"]["count"] == 5 and auth["latency_ms"]["p50"] == 2.0
    assert auth["injected_delay_ms"]["mean"] == 1.0
    assert merged["endpoints"]["csds"]["received"] == 1
    assert merged["sockets"]["open"] == 2 and merged["sockets"]["closed_by_server"] == {"4401": 2}
