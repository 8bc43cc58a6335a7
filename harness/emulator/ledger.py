"""The emulator's ledger: what arrived, what was answered, what was injected, how long it took.

Cheap on the hot path: integer counters and a log-linear latency histogram (each sample is
rounded to two significant digits in milliseconds, the same idea as Locust's response-time
rounding), so percentiles cost nothing until someone asks. Snapshots are plain JSON and can
be summed across worker processes (:func:`merge_snapshots`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

from harness.reports.percentiles import LABELLED

PERCENTILES = LABELLED  # (("p50", 0.5), ..., ("p99_9", 0.999)): the project's one list
# fault kinds whose request gets no answer or a broken one: the fault is that request's outcome
# (``status`` and ``code`` are answers, counted in ``errors`` too; ``slow`` answers, late)
UNANSWERED_FAULTS = frozenset({"hang", "reset", "close", "malformed", "truncated", "no_pong"})


def bucket_ms(ms: float) -> float:
    """``ms`` rounded to two significant digits (0.0437 -> 0.044, 1234 -> 1200)."""
    if ms <= 0.0:
        return 0.0
    return float(f"{ms:.2g}")


def _bucket_key(bucket: float) -> str:
    return f"{bucket:g}" if bucket < 1e15 else str(int(bucket))


class Histogram:
    """Counts per rounded-millisecond bucket, plus an exact count, sum and max."""

    __slots__ = ("buckets", "count", "total_ms", "max_ms")

    def __init__(self) -> None:
        self.buckets: dict[float, int] = {}
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        self.count += 1
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms
        b = float(f"{ms:.2g}") if ms > 0.0 else 0.0
        buckets = self.buckets
        buckets[b] = buckets.get(b, 0) + 1

    def summary(self) -> dict[str, float]:
        return summarise(self.buckets, self.count, self.total_ms, self.max_ms)

    def histogram_json(self) -> dict[str, int]:
        return {_bucket_key(b): n for b, n in sorted(self.buckets.items())}

    def timing_json(self) -> dict[str, Any]:
        """A timing block: the summary, its buckets and raw total, summable across workers (:func:`merge_sections`)."""
        return {**self.summary(), "histogram_ms": self.histogram_json(), "total_ms": self.total_ms}


def summarise(buckets: dict[float, int], count: int, total_ms: float, max_ms: float) -> dict[str, float]:
    """count, mean, each of :data:`PERCENTILES` and max from bucket counts (percentiles are bucket values)."""
    out: dict[str, float] = {"count": count, "mean": round(total_ms / count, 4) if count else 0.0}
    ordered = sorted(buckets.items())
    for name, q in PERCENTILES:
        out[name] = _percentile(ordered, count, q)
    out["max"] = round(max_ms, 4)
    return out


def _percentile(ordered: list[tuple[float, int]], count: int, q: float) -> float:
    if not count:
        return 0.0
    rank = max(1, math.ceil(q * count))
    seen = 0
    for value, n in ordered:
        seen += n
        if seen >= rank:
            return value
    return ordered[-1][0]


class TargetStats:
    """Counters of one ledger key (an endpoint, "connect", "ping", "hold" or a frame type)."""

    __slots__ = ("received", "ok", "errors", "faults", "gone", "latency", "injected")

    def __init__(self) -> None:
        self.received = 0
        self.ok = 0
        # nothing written because the connection or socket had ended when the answer was due (the
        # peer left during injected latency or a slow fault): the outcome no other counter has
        self.gone = 0
        self.errors: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.latency = Histogram()
        self.injected = Histogram()

    def error(self, key: int | str) -> None:
        k = str(key)
        self.errors[k] = self.errors.get(k, 0) + 1

    def answered(self, code: int) -> None:
        """Count an answer by its status or response code: ``ok`` for 2xx, else ``errors[code]``."""
        if 200 <= code < 300:
            self.ok += 1
        else:
            self.error(code)

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def timing(self, elapsed_s: float, injected_s: float) -> None:
        """Time from reading the request to writing the answer; injected delay also apart."""
        self.latency.add(elapsed_s * 1000.0)
        self.injected.add(injected_s * 1000.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "ok": self.ok,
            "errors": dict(self.errors),
            "faults": dict(self.faults),
            "gone": self.gone,
            "latency_ms": self.latency.summary(),
            "injected_delay_ms": self.injected.summary(),
            "histogram_ms": self.latency.histogram_json(),
            "injected_histogram_ms": self.injected.histogram_json(),
            # Raw figures so that snapshots of several workers can be summed exactly.
            "_sum": {
                "latency_total_ms": self.latency.total_ms,
                "injected_total_ms": self.injected.total_ms,
            },
        }


class Section(Protocol):
    """A part of the ledger kept elsewhere (the conversation traffic, the agents): reset with it, shown in it."""

    def reset(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class Ledger:
    """All counters of one emulator process."""

    def __init__(self) -> None:
        self.sections: dict[str, Section] = {}
        self.reset()

    def add_section(self, name: str, section: Section) -> None:
        """Show ``section`` under ``name`` in every snapshot; reset it with the rest."""
        self.sections[name] = section

    def reset(self) -> None:
        """Zero every counter; sockets and conversations still open stay counted as open."""
        open_sockets = getattr(self, "sockets_open", 0)
        open_conversations = getattr(self, "conversations_open", 0)
        self.since = time.time()
        self.targets: dict[str, TargetStats] = {}
        self.sockets_open = open_sockets
        self.sockets_peak = open_sockets
        self.sockets_accepted = 0
        self.sockets_rejected = 0
        self.closed_by_client = 0
        self.client_dropped = 0
        self.closed_by_server: dict[str, int] = {}
        self.sockets_reset = 0
        self.idle_closed = 0
        self.accept_errors = 0
        self.fd_limit_hits = 0
        self.conversations_open = open_conversations
        self.conversations_opened = 0
        self.conversations_closed = 0
        self.identities_issued = 0  # new anonymous identities (anonymous/authorize without a body)
        self.identities_extended = 0  # ... and old ones extended ({"id_token": old}): returning consumers
        self.pings_received = 0
        self.pings_ponged = 0
        self.pings_withheld = 0
        self.rate_limited = 0  # requests answered 429 by the per-account limit (--rate-limit)
        for section in self.sections.values():
            section.reset()

    def target(self, key: str) -> TargetStats:
        stats = self.targets.get(key)
        if stats is None:
            stats = self.targets[key] = TargetStats()
        return stats

    def arrived(self, key: str) -> TargetStats:
        """Count one request (handshake, ping, frame) of ``key`` as received; its stats to count the rest."""
        stats = self.targets.get(key)
        if stats is None:
            stats = self.targets[key] = TargetStats()
        stats.received += 1
        return stats

    # sockets ------------------------------------------------------------------------
    def socket_opened(self) -> None:
        self.sockets_accepted += 1
        self.sockets_open += 1
        if self.sockets_open > self.sockets_peak:
            self.sockets_peak = self.sockets_open

    def socket_closed(self) -> None:
        self.sockets_open -= 1

    def identity(self, extended: bool) -> None:
        """The IDP issued an anonymous identity token: a new consumer, or an old one extended."""
        if extended:
            self.identities_extended += 1
        else:
            self.identities_issued += 1

    def server_close(self, code: int) -> None:
        k = str(code)
        self.closed_by_server[k] = self.closed_by_server.get(k, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "endpoints": {key: stats.to_json() for key, stats in sorted(self.targets.items())},
            "sockets": {
                "open": self.sockets_open,
                "peak": self.sockets_peak,
                "accepted": self.sockets_accepted,
                "rejected": self.sockets_rejected,
                "closed_by_client": self.closed_by_client,
                "client_dropped": self.client_dropped,
                "closed_by_server": dict(self.closed_by_server),
                "reset": self.sockets_reset,
                "idle_closed": self.idle_closed,
                "accept_errors": self.accept_errors,
                "fd_limit_hits": self.fd_limit_hits,
            },
            "conversations": {
                "open": self.conversations_open,
                "opened": self.conversations_opened,
                "closed": self.conversations_closed,
            },
            "identities": {"issued": self.identities_issued, "extended": self.identities_extended},
            "pings": {
                "received": self.pings_received,
                "ponged": self.pings_ponged,
                "withheld": self.pings_withheld,
            },
            "rate_limited": self.rate_limited,
            **{name: section.snapshot() for name, section in self.sections.items()},
            "since": self.since,
        }


def unaccounted(entry: dict[str, Any]) -> int:
    """Requests of one ledger entry (its JSON) that no outcome counts: 0 once nothing is in flight.

    Every request ends as exactly one of ``ok``, an ``errors`` code, an unanswered or broken fault,
    or ``gone`` (docs/emulator.md, "Ledger"); a hold ends as ``ok`` or the fault that fired.
    """
    broken = sum(n for kind, n in entry["faults"].items() if kind in UNANSWERED_FAULTS)
    return entry["received"] - entry["ok"] - sum(entry["errors"].values()) - broken - entry.get("gone", 0)


# ---------------------------------------------------------------------- merging
def _add_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for k, n in other.items():
        into[k] = into.get(k, 0) + n


def _merge_target(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {"received": a["received"] + b["received"], "ok": a["ok"] + b["ok"], "gone": a["gone"] + b["gone"]}
    for key in ("errors", "faults", "histogram_ms", "injected_histogram_ms"):
        merged = dict(a[key])
        _add_counts(merged, b[key])
        out[key] = merged
    sums = {k: a["_sum"][k] + b["_sum"][k] for k in a["_sum"]}
    out["_sum"] = sums
    for summary, hist, total in (
        ("latency_ms", "histogram_ms", "latency_total_ms"),
        ("injected_delay_ms", "injected_histogram_ms", "injected_total_ms"),
    ):
        buckets = {float(k): n for k, n in out[hist].items()}
        count = a[summary]["count"] + b[summary]["count"]
        out[summary] = summarise(buckets, count, sums[total], max(a[summary]["max"], b[summary]["max"]))
    return out


def _merge_timing(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    buckets = {float(k): n for k, n in a["histogram_ms"].items()}
    for k, n in b["histogram_ms"].items():
        buckets[float(k)] = buckets.get(float(k), 0) + n
    total = a["total_ms"] + b["total_ms"]
    out = summarise(buckets, a["count"] + b["count"], total, max(a["max"], b["max"]))
    out["histogram_ms"] = {_bucket_key(k): n for k, n in sorted(buckets.items())}
    out["total_ms"] = total
    return out


def merge_sections(a: Any, b: Any) -> Any:
    """Two workers' values of one section summed: numbers added, objects key by key, timing blocks
    (:meth:`Histogram.timing_json`) by their buckets; anything else is ``a``'s."""
    if isinstance(a, dict) and isinstance(b, dict):
        if "histogram_ms" in a and "total_ms" in a and "histogram_ms" in b:
            return _merge_timing(a, b)
        out = dict(a)
        for key, value in b.items():
            out[key] = merge_sections(a[key], value) if key in a else value
        return out
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a + b
    return a


_OWN_KEYS = frozenset({"endpoints", "sockets", "conversations", "pings", "identities", "since"})


def merge_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum ledgers of several worker processes into one (peaks are summed: an upper bound)."""
    if not snapshots:
        return Ledger().snapshot()
    total = snapshots[0]
    for snap in snapshots[1:]:
        endpoints = dict(total["endpoints"])
        for key, stats in snap["endpoints"].items():
            endpoints[key] = _merge_target(endpoints[key], stats) if key in endpoints else stats
        sockets: dict[str, Any] = {}
        for key, value in total["sockets"].items():
            if isinstance(value, dict):
                merged = dict(value)
                _add_counts(merged, snap["sockets"].get(key, {}))
                sockets[key] = merged
            else:
                sockets[key] = value + snap["sockets"].get(key, 0)
        total = {
            "endpoints": dict(sorted(endpoints.items())),
            "sockets": sockets,
            "conversations": {k: v + snap["conversations"].get(k, 0) for k, v in total["conversations"].items()},
            "pings": {k: v + snap["pings"].get(k, 0) for k, v in total["pings"].items()},
            "identities": {k: v + snap["identities"].get(k, 0) for k, v in total["identities"].items()},
            # the sections (and counters) added since: summed whatever their shape
            **{
                key: merge_sections(total[key], snap[key]) if key in total and key in snap else total.get(key, snap.get(key))
                for key in sorted({*total, *snap} - _OWN_KEYS)
            },
            "since": min(total["since"], snap["since"]),
        }
    return total
