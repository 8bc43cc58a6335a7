"""The percentiles every report, ledger and live view of this project speaks of, declared once.

A summary stores them as ``p50_ms`` ... ``p99_9_ms``; the emulator's ledger and the web UI's
ping round trip as ``p50`` ... ``p99_9``. Both names come from :func:`label`, so a new
percentile added here reaches every report, threshold and table at once.
"""

from __future__ import annotations

from typing import Final

QUANTILES: Final = (0.50, 0.90, 0.95, 0.99, 0.999)


def label(quantile: float) -> str:
    """``0.5`` -> ``"p50"``, ``0.999`` -> ``"p99_9"``."""
    text = f"{quantile * 100:.4f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")


def display(quantile: float) -> str:
    """How pages and threshold rules write a quantile: ``0.95`` -> ``"p95"``, ``0.999`` -> ``"p99.9"``."""
    return f"p{quantile * 100:.6g}"


def ms_key(quantile: float) -> str:
    """The summary's key for a quantile: ``0.95`` -> ``"p95_ms"``."""
    return f"{label(quantile)}_ms"


LABELLED: Final = tuple((label(q), q) for q in QUANTILES)  # (("p50", 0.5), ...)
MS_KEYS: Final = tuple((ms_key(q), q) for q in QUANTILES)  # (("p50_ms", 0.5), ...)
