"""Latency histograms with honest resolution: log-linear buckets, at most 1 % relative error.

Locust's own histogram rounds to two significant digits (1 ms below 100 ms, 10 ms to 1 s, 100 ms
above), so a p99 of 1.23 s reads 1.2 s or 1.3 s. Here every bucket is 2 % wide: a value is reported
as its bucket's geometric middle, within 1 % of what was measured, from 1 microsecond to hours in
about a thousand buckets (a step's latencies fill a few hundred). Buckets merge by adding counts, so
workers' histograms sum on the master exactly. Pure: used by the run side to record and by the
readers (thresholds, compare) to compute any percentile.

A small implementation, not the ``hdrhistogram`` package: one dict update per sample (about a
microsecond, against the tens a step's own timing costs) and JSON-ready as it is; HdrHistogram's
fixed arrays buy nothing at this rate and its encoding is opaque in ``summary.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

RATIO: Final = 1.02  # bucket width: values within 1 % of the bucket's middle
MIN_MS: Final = 0.001  # below a microsecond: bucket -1, reported as 0
_LOG_RATIO: Final = math.log(RATIO)


def bucket(ms: float) -> int:
    """The bucket of a latency in ms."""
    if not ms >= MIN_MS:  # also NaN
        return -1
    return int(math.log(ms / MIN_MS) / _LOG_RATIO)


def value(key: int) -> float:
    """A bucket's representative latency: its geometric middle (0 for bucket -1)."""
    return 0.0 if key < 0 else MIN_MS * RATIO ** (key + 0.5)


def normalize(hist: Mapping[Any, Any] | None) -> dict[int, int]:
    """``{"1234": 5}`` (summary.json's string keys) as ``{1234: 5}``, sorted, zero counts dropped."""
    out: dict[int, int] = {}
    for k, v in (hist or {}).items():
        if int(v) > 0:
            out[int(k)] = out.get(int(k), 0) + int(v)
    return dict(sorted(out.items()))


def merge(*hists: Mapping[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in hists:
        for k, v in hist.items():
            out[k] = out.get(k, 0) + v
    return out


def percentile(hist: Mapping[int, int], q: float, lo: float | None = None, hi: float | None = None) -> float | None:
    """The ``q`` quantile (0..1): the value of the first bucket holding the ceil(q * n)-th sample.

    ``lo``/``hi``: the exact minimum and maximum, which no percentile goes beyond.
    """
    n = sum(hist.values())
    if not n:
        return None
    rank, seen = max(1, math.ceil(q * n)), 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            v = round(value(key), 4)
            if lo is not None:
                v = max(v, lo)
            if hi is not None:
                v = min(v, hi)
            return v
    return None  # unreachable: rank <= n
