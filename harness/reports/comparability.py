"""Whether two runs can be compared at all, and how big a change must be to count.

The set-up check (target, scenario, users refused; other differences listed) runs before any
metric is judged, and every output shows its findings, so a verdict never hides that the runs
were not like for like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from harness.reports.loading import ReportError

# run fields that, when they differ, make a comparison meaningless (refused unless forced)
REFUSE_FIELDS: Final = ("target", "scenario", "users")
WARN_FIELDS: Final = ("spawn_rate", "processes", "account", "idp", "messaging", "harness_version", "locust_version")
HOST_FIELDS: Final = ("idp", "messaging", "socket_url")  # random loopback ports on the embedded emulator
IGNORED_SETTINGS: Final = ("label", "reports_dir")
CLEAN_ENDS: Final = ("time limit", "completed", "stopped", None)


@dataclass(frozen=True)
class Tolerance:
    """How big a change must be before it can count (the statistics decide whether it is real)."""

    relative: float = 0.10  # latency and throughput: fraction of the base value
    absolute_ms: float = 5.0  # latency: never flag less than this many ms
    ratio: float = 0.005  # failure ratios: absolute, 0.005 = half a percentage point
    confidence: float = 0.95  # each run's interval / the tests' two-sided level
    duration: float = 0.25  # comparability: durations differing by more than this fraction are listed
    family_wise: bool = True  # Bonferroni: split 1 - confidence over every metric judged

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ReportError(f"confidence must be in [0.5, 1), not {self.confidence}")
        for name in ("relative", "absolute_ms", "ratio", "duration"):
            if getattr(self, name) < 0:
                raise ReportError(f"tolerance {name} must not be negative")


@dataclass
class Mismatch:
    field: str
    base: Any
    candidate: Any
    note: str = ""

    def text(self) -> str:
        return f"{self.field}: {_short(self.base)} vs {_short(self.candidate)}" + (
            f" ({self.note})" if self.note else ""
        )


@dataclass
class Comparability:
    refusals: list[Mismatch] = field(default_factory=list)  # meaningless comparison unless forced
    warnings: list[Mismatch] = field(default_factory=list)  # shown, not blocking

    @property
    def comparable(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparable": self.comparable,
            "refusals": [asdict(m) | {"text": m.text()} for m in self.refusals],
            "warnings": [asdict(m) | {"text": m.text()} for m in self.warnings],
        }


class NotComparable(ReportError):
    """The runs differ in target, scenario or users; compare(..., force=True) to compare anyway."""

    def __init__(self, comparability: Comparability) -> None:
        self.comparability = comparability
        items = "; ".join(m.text() for m in comparability.refusals)
        super().__init__(f"runs are not comparable: {items} (use --force to compare anyway)")


def check_comparable(
    base: Mapping[str, Any], candidate: Mapping[str, Any], tol: Tolerance = Tolerance()
) -> Comparability:
    """What differs between the two runs' set-ups, split into refusals and warnings."""
    out = Comparability()
    rb, rc = base.get("run") or {}, candidate.get("run") or {}
    for f in REFUSE_FIELDS:
        if rb.get(f) != rc.get(f):
            out.refusals.append(Mismatch(f, rb.get(f), rc.get(f), "comparison is meaningless"))
    both_emulator = rb.get("target") == rc.get("target") == "emulator"
    for f in WARN_FIELDS:
        if both_emulator and f in HOST_FIELDS:
            continue
        if rb.get(f) != rc.get(f):
            out.warnings.append(Mismatch(f, rb.get(f), rc.get(f)))
    db, dc = rb.get("duration_s"), rc.get("duration_s")
    numbers = isinstance(db, (int, float)) and isinstance(dc, (int, float)) and max(db, dc) > 0
    if numbers and abs(db - dc) / max(db, dc) > tol.duration:
        out.warnings.append(
            Mismatch("duration_s", db, dc, f"differ by more than {tol.duration:.0%}; throughput and maxima move")
        )
    for who, r in (("base", rb), ("candidate", rc)):
        if r.get("end_reason") not in CLEAN_ENDS:
            out.warnings.append(
                Mismatch("end_reason", rb.get("end_reason"), rc.get("end_reason"), f"the {who} run ended early")
            )
            break
    sb, sc = rb.get("settings") or {}, rc.get("settings") or {}
    for key in sorted(set(sb) | set(sc)):
        if key in IGNORED_SETTINGS or (both_emulator and key in HOST_FIELDS):
            continue
        if sb.get(key) != sc.get(key):
            out.warnings.append(Mismatch(f"settings.{key}", sb.get(key), sc.get(key)))
    steps_b, steps_c = set(base.get("steps") or {}), set(candidate.get("steps") or {})
    if steps_b != steps_c:
        out.warnings.append(
            Mismatch(
                "steps", sorted(steps_b - steps_c), sorted(steps_c - steps_b), "steps only in base / only in candidate"
            )
        )
    if rb.get("id") and rb.get("id") == rc.get("id"):
        out.warnings.append(Mismatch("id", rb.get("id"), rc.get("id"), "the same run on both sides"))
    return out


def _short(v: Any) -> str:
    text = repr(v) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."
