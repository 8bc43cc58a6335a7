"""Our histogram code matches Locust's own functions, and the intervals cover what they claim."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from harness.reports import histogram as H
from harness.reports import inference

ROOT = Path(__file__).resolve().parents[2]

# Runs in a subprocess: importing locust monkey-patches the interpreter, which this test must not do.
AGREEMENT = r"""
import json, random, sys
from locust.stats import bucket_response_time, calculate_response_time_percentile
from harness.reports import histogram as H
rng = random.Random(7)
mismatch = []
for trial in range(300):
    n = rng.randint(1, 3000)
    scale = rng.choice([0.3, 3, 30, 300, 3000, 30000])
    values = [rng.lognormvariate(0, 1.0) * scale for _ in range(n)]
    for v in values[:50]:
        if bucket_response_time(v) != H.bucket_response_time(v):
            mismatch.append(("bucket", v))
    hist = {}
    for v in values:
        b = bucket_response_time(v)
        hist[b] = hist.get(b, 0) + 1
    assert hist == H.from_samples(values)
    for q in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0, rng.random()):
        a = calculate_response_time_percentile(hist, n, q)
        b = H.percentile(hist, n, q)
        if a != b or b != H.order_statistic(hist, H.rank_of_percentile(n, q)):
            mismatch.append(("percentile", n, q, a, b))
print(json.dumps(mismatch[:5]))
"""


def test_bucketing_and_percentiles_agree_with_locust() -> None:
    out = subprocess.run([sys.executable, "-c", AGREEMENT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_bucket_span_contains_exactly_the_values_that_round_into_it() -> None:
    rng = random.Random(3)
    for _ in range(20000):
        v = rng.lognormvariate(0, 2.0) * 50
        b = H.bucket_response_time(v)
        lo, hi = H.bucket_span(b)
        assert lo - 1e-9 <= v <= hi + 1e-9, (v, b, lo, hi)


def test_quantile_interval_covers_the_true_quantile_at_its_level() -> None:
    """Coverage check of the order-statistic interval: >= 95% of seeded draws contain the true p95."""
    import math
    from statistics import NormalDist

    true_p95 = 40.0 * math.exp(0.4 * NormalDist().inv_cdf(0.95))
    hits, trials = 0, 200
    for seed in range(trials):
        rng = random.Random(seed)
        hist = H.from_samples(rng.lognormvariate(0, 0.4) * 40.0 for _ in range(400))
        lo, hi = inference.quantile_interval(hist, 0.95, 0.95)
        hits += lo <= true_p95 <= hi
    assert hits / trials >= 0.93  # 0.95 nominal; a couple of points of slack for 200 trials


def test_exact_binomial_ranks_agree_with_the_normal_approximation_for_large_n() -> None:
    for n, q in ((20000, 0.95), (100000, 0.5), (50000, 0.99)):
        for p in (0.0005, 0.025, 0.975, 0.9995):
            assert abs(inference._binom_ppf(n, q, p) - inference.binom_ppf_normal(n, q, p)) <= 2, (n, q, p)


def test_small_n_rank_interval_is_exact() -> None:
    """n=10, median, 0.9: P(B<=l-1) <= 0.05 and P(B>=u) <= 0.05, computed by hand from the pmf."""
    from math import comb

    lo, hi = inference.quantile_rank_interval(10, 0.5, 0.9)
    cdf = [sum(comb(10, j) for j in range(k + 1)) / 1024 for k in range(11)]
    assert cdf[lo - 1] <= 0.05 < cdf[lo]
    assert 1 - cdf[hi - 1] <= 0.05


def test_two_proportion_test_separates_real_differences_from_noise() -> None:
    assert inference.two_proportion_p_value(0, 1000, 0, 1000) == 1.0
    assert inference.two_proportion_p_value(1, 1000, 2, 1000) > 0.5
    assert inference.two_proportion_p_value(10, 1000, 100, 1000) < 1e-6  # z-test branch
    assert inference.two_proportion_p_value(0, 500, 9, 500) < 0.01  # Fisher branch


def test_max_exceedance_needs_several_samples_above_the_other_max() -> None:
    low = H.from_samples([10.0] * 1000)
    one_outlier = H.from_samples([10.0] * 999 + [80.0])
    m, p = inference.max_exceedance_p(low, one_outlier)
    assert m == 1 and p > 0.4
    many = H.from_samples([10.0] * 950 + [80.0] * 50)
    m, p = inference.max_exceedance_p(low, many)
    assert m == 50 and p < 1e-10
