"""Locust's response-time histograms: bucketing, percentiles, and what a histogram can tell.

``bucket_response_time`` and ``percentile`` reimplement the few lines of ``locust.stats``
(``bucket_response_time``, ``calculate_response_time_percentile``) so that every number here
matches Locust's reports exactly without importing Locust (and gevent's monkey patching) into a
tool that only reads files; tests/reports checks they agree with Locust's own functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

Histogram = dict[int, int]


def bucket_response_time(response_time: float) -> int:
    """Locust's rounding: ~2 significant digits (147 -> 150, 3432 -> 3400, 58760 -> 59000)."""
    if response_time < 100:
        return round(response_time)
    if response_time < 1000:
        return int(round(response_time, -1))
    if response_time < 10000:
        return int(round(response_time, -2))
    return int(round(response_time, -3))


def bucket_width(bucket: int) -> int:
    """The span of response times that round into ``bucket`` (for densities and resolution)."""
    if bucket < 100:
        return 1
    if bucket < 1000:
        return 10
    if bucket < 10000:
        return 100
    return 1000


def bucket_span(bucket: int) -> tuple[float, float]:
    """[lo, hi): the raw response times that Locust rounds into ``bucket``.

    Below 100 ms a bucket is 1 ms wide, then 10 ms, 100 ms, 1 s; the first bucket of each decade is
    narrower because values just below it round up into it (99.6 -> 100, 100..104.9 -> 100).
    """
    if bucket < 100:
        return max(bucket - 0.5, 0.0), bucket + 0.5
    for decade in (100, 1000, 10000):
        if bucket == decade:
            return decade - 0.5 * bucket_width(decade - 1), decade + 0.5 * bucket_width(decade)
    w = bucket_width(bucket)
    return bucket - w / 2.0, bucket + w / 2.0


def from_samples(samples: Iterable[float]) -> Histogram:
    """A Locust-style histogram (bucket ms -> count) of raw response times in ms."""
    hist: Histogram = {}
    for value in samples:
        b = bucket_response_time(value)
        hist[b] = hist.get(b, 0) + 1
    return dict(sorted(hist.items()))


def normalize(hist: Mapping[Any, Any] | None) -> Histogram:
    """``summary.json``'s ``{"4": 500}`` (string keys) as ``{4: 500}``, sorted, zero counts dropped."""
    if not hist:
        return {}
    out: Histogram = {}
    for k, v in hist.items():
        n = int(v)
        if n > 0:
            b = int(float(k))
            out[b] = out.get(b, 0) + n
    return dict(sorted(out.items()))


def total(hist: Mapping[int, int]) -> int:
    return sum(hist.values())


def percentile(hist: Mapping[int, int], num_requests: int, percent: float) -> int:
    """Locust's ``calculate_response_time_percentile``: the bucket holding order statistic int(n*q)+1."""
    num_of_request = int(num_requests * percent)
    processed_count = 0
    for response_time in sorted(hist.keys(), reverse=True):
        processed_count += hist[response_time]
        if num_requests - processed_count <= num_of_request:
            return response_time
    return 0


def order_statistic(hist: Mapping[int, int], rank: int) -> int:
    """The ``rank``-th smallest sample (1-based, clamped to 1..n) of a histogram."""
    n = total(hist)
    if n == 0:
        return 0
    rank = min(max(rank, 1), n)
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return bucket
    return max(hist)  # pragma: no cover - unreachable when counts are consistent


def rank_of_percentile(n: int, q: float) -> int:
    """The 1-based rank Locust's percentile picks: int(n*q)+1, at most n."""
    return min(int(n * q) + 1, n)


def mean_sd(hist: Mapping[int, int]) -> tuple[float, float]:
    """Mean and sample standard deviation of the bucket values (0 when fewer than two samples).

    Bucketing adds at most half a bucket to each sample; the variance of that rounding
    (width^2/12) is added so a histogram of identical buckets still has a positive spread.
    """
    n = total(hist)
    if n == 0:
        return 0.0, 0.0
    mean = sum(b * c for b, c in hist.items()) / n
    if n < 2:
        return mean, 0.0
    ss = sum(c * ((b - mean) ** 2 + bucket_width(b) ** 2 / 12.0) for b, c in hist.items())
    return mean, math.sqrt(ss / (n - 1))


def cdf_points(hist: Mapping[int, int]) -> list[tuple[int, float]]:
    """(bucket, fraction of samples <= bucket) for each bucket, ascending."""
    n = total(hist)
    out, seen = [], 0
    for b in sorted(hist):
        seen += hist[b]
        out.append((b, seen / n))
    return out
