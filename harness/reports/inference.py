"""Small, closed-form statistics for comparing two runs (stdlib only, deterministic).

Everything here is exact or a textbook normal approximation; nothing draws random numbers, so a
comparison gives the same verdict every time it is run on the same two files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist

from harness.reports import histogram as H

_STD = NormalDist()
_TAIL_SDS = 12.0  # the binomial mass beyond 12 standard deviations (< 1e-30) is ignored


def z_for(confidence: float) -> float:
    """Two-sided standard normal quantile: 1.96 for 0.95."""
    return _STD.inv_cdf(0.5 + confidence / 2.0)


def _binom_ppf(n: int, q: float, p: float) -> int:
    """Smallest k with P(Binom(n, q) <= k) >= p, exactly (summing the pmf in log space).

    The walk starts 12 standard deviations below the mean, where the mass left out is < 1e-30,
    so it costs O(sqrt(n)) rather than O(n).
    """
    if q <= 0.0:
        return 0
    if q >= 1.0:
        return n
    sd = math.sqrt(n * q * (1.0 - q))
    start = max(0, math.floor(n * q - _TAIL_SDS * sd - 1))
    log_q, log_1q, lg_n = math.log(q), math.log1p(-q), math.lgamma(n + 1)
    cum = 0.0
    for k in range(start, n + 1):
        cum += math.exp(lg_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_1q)
        if cum >= p - 1e-12:
            return k
    return n


def binom_ppf_normal(n: int, q: float, p: float) -> int:
    """The normal approximation of :func:`_binom_ppf` (with continuity correction), for cross-checks."""
    k = n * q + _STD.inv_cdf(p) * math.sqrt(n * q * (1 - q)) - 0.5
    return min(max(math.ceil(k), 0), n)


def quantile_rank_interval(n: int, q: float, confidence: float) -> tuple[int, int]:
    """Distribution-free CI for the q-quantile as 1-based ranks (l, u): P(X(l) <= xi_q <= X(u)) >= conf.

    The number of samples below the true quantile is Binom(n, q); the interval takes the ranks that
    bound its central ``confidence`` mass (the classic order-statistic interval; no density estimate).
    """
    if n <= 0:
        return 0, 0
    alpha = 1.0 - confidence
    lo = _binom_ppf(n, q, alpha / 2.0)  # P(B <= lo) >= alpha/2 -> rank lo is a lower bound at level alpha/2
    hi = _binom_ppf(n, q, 1.0 - alpha / 2.0) + 1
    return max(lo, 1), min(hi, n)


def quantile_interval(hist: Mapping[int, int], q: float, confidence: float) -> tuple[float, float]:
    """The order-statistic CI of the q-quantile in ms, widened to the buckets' edges (Locust's rounding)."""
    n = H.total(hist)
    if n == 0:
        return math.nan, math.nan
    lo_rank, hi_rank = quantile_rank_interval(n, q, confidence)
    lo, hi = H.order_statistic(hist, lo_rank), H.order_statistic(hist, hi_rank)
    return H.bucket_span(lo)[0], H.bucket_span(hi)[1]


def max_exceedance_p(low: Mapping[int, int], high: Mapping[int, int]) -> tuple[int, float]:
    """Exceedance test for maxima: how many of ``high``'s samples lie above ``low``'s maximum, and how
    likely that many (or more) would be if both runs drew from one distribution.

    Under that hypothesis the pooled samples are exchangeable, so the chance that the top ``m`` of
    the pool all come from ``high`` is prod_{i<m} (n_high - i) / (n_low + n_high - i) -- exact and
    distribution-free. Ties with ``low``'s top bucket do not count as above (conservative).
    """
    n_low, n_high = H.total(low), H.total(high)
    if not n_low or not n_high:
        return 0, 1.0
    top = max(low)
    m = sum(c for b, c in high.items() if b > top)
    p = 1.0
    for i in range(m):
        p *= (n_high - i) / (n_low + n_high - i)
        if p < 1e-300:
            return m, 0.0
    return m, p


def mean_interval(mean: float, sd: float, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    half = z_for(confidence) * sd / math.sqrt(n)
    return mean - half, mean + half


def welch_p_value(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> float:
    """Two-sided p-value of Welch's z-test on two means (n large enough for the normal approximation)."""
    if n1 < 2 or n2 < 2:
        return 1.0
    se = math.sqrt(s1 * s1 / n1 + s2 * s2 / n2)
    if se == 0:
        return 1.0 if m1 == m2 else 0.0
    return 2.0 * (1.0 - _STD.cdf(abs(m2 - m1) / se))


def _log_hypergeom(k: int, n1: int, n2: int, total_k: int) -> float:
    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    return log_comb(n1, k) + log_comb(n2, total_k - k) - log_comb(n1 + n2, total_k)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value for 'same failure probability' between x1/n1 and x2/n2.

    Fisher's exact test when any expected cell count is below 5 (few failures, the usual case for a
    healthy run), otherwise the pooled two-proportion z-test.
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    total_x, total_n = x1 + x2, n1 + n2
    pooled = total_x / total_n
    expected = (n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if min(expected) < 5:
        lo, hi = max(0, total_x - n2), min(total_x, n1)
        observed = _log_hypergeom(x1, n1, n2, total_x)
        p = 0.0
        for k in range(lo, hi + 1):
            lp = _log_hypergeom(k, n1, n2, total_x)
            if lp <= observed + 1e-9:
                p += math.exp(lp)
        return min(1.0, p)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x2 / n2 - x1 / n1) / se
    return 2.0 * (1.0 - _STD.cdf(z))


def poisson_rate_p_value(c1: int, t1: float, c2: int, t2: float) -> float:
    """Two-sided p-value for 'same event rate' of counts c over durations t (normal approximation)."""
    if t1 <= 0 or t2 <= 0:
        return 1.0
    r1, r2 = c1 / t1, c2 / t2
    var = c1 / (t1 * t1) + c2 / (t2 * t2)
    if var == 0:
        return 1.0 if r1 == r2 else 0.0
    z = abs(r2 - r1) / math.sqrt(var)
    return 2.0 * (1.0 - _STD.cdf(z))
