"""The precise latency histogram: within 1 % everywhere, mergeable, and what the summary reports."""

from __future__ import annotations

import math
import random

from harness.reports import histogram as H
from harness.reports import loghist


def test_every_value_reads_back_within_one_percent() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        ms = 10 ** rng.uniform(-2.5, 7)  # 3 microseconds to 3 hours
        got = loghist.value(loghist.bucket(ms))
        assert abs(got - ms) / ms <= 0.01, (ms, got)
    assert loghist.value(loghist.bucket(0.0)) == 0.0 and loghist.bucket(float("nan")) == -1


def test_a_p99_of_1_23_s_reads_1_23_s_where_locusts_buckets_say_1_2() -> None:
    samples = [1000.0] * 98 + [1230.0, 1230.0]
    hist: dict[int, int] = {}
    for ms in samples:
        hist[loghist.bucket(ms)] = hist.get(loghist.bucket(ms), 0) + 1
    assert abs(loghist.percentile(hist, 0.99) - 1230.0) / 1230.0 <= 0.01
    rounded = H.from_samples(samples)
    assert H.percentile(rounded, len(samples), 0.99) == 1200  # Locust's own histogram
    assert loghist.percentile(hist, 0.99, hi=1230.0) == 1230.0  # never past the exact maximum


def test_workers_histograms_merge_exactly() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(3.0, 0.8) for _ in range(5000)]

    def hist_of(vs: list[float]) -> dict[int, int]:
        out: dict[int, int] = {}
        for v in vs:
            out[loghist.bucket(v)] = out.get(loghist.bucket(v), 0) + 1
        return out

    merged = loghist.merge(hist_of(values[:1000]), hist_of(values[1000:3500]), hist_of(values[3500:]))
    assert merged == hist_of(values)
    exact = sorted(values)
    for q in (0.5, 0.9, 0.99, 0.999):
        truth = exact[math.ceil(q * len(exact)) - 1]  # the ceil(q n)-th sample
        assert abs(loghist.percentile(merged, q) - truth) / truth <= 0.0101, q
    assert loghist.normalize({"12": 3, "-1": 1, "7": 0}) == {-1: 1, 12: 3}
