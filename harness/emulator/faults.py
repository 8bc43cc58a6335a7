"""Latency and fault injection: specs, their text syntax, validation and the per-request draw.

Plain Python (no aiohttp): the server asks :meth:`FaultPlan.decide` once per request, ping,
handshake or socket ("hold") and acts on the answer. Syntax and semantics are documented in
``docs/emulator.md`` ("Latency and faults"); :data:`FAULT_HELP` is the short form for ``--help``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from harness.protocol.latency import ConfigError, LatencySpec, latency_from_json, latency_from_text, parse_duration

HTTP_TARGETS = frozenset({"anonymous-authorize", "authenticate", "csds", "signup"})
SOCKET_TARGETS = frozenset({"connect", "ping", "hold"})
WILDCARD = "*"
PLAN_KEYS = ("latency", "faults", "seed")  # a plan's JSON form: in config files and at /admin/faults
_TARGET_RE = re.compile(r"^[A-Za-z0-9_.$*-]{1,64}$")


def category(target: str) -> str:
    """ "http", "connect", "ping", "hold" or "frame" (any other name is a frame type)."""
    if target in HTTP_TARGETS:
        return "http"
    if target in SOCKET_TARGETS:
        return target
    return "frame"


# kind -> categories it applies to, and its parameters with defaults
KINDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "status": (frozenset({"http", "connect"}), {"status": 503, "retry_after": None, "message": None}),
    "hang": (frozenset({"http", "connect", "frame"}), {"seconds": 600.0}),
    "malformed": (frozenset({"http", "frame"}), {}),
    "truncated": (frozenset({"http", "frame"}), {}),
    "reset": (frozenset({"http", "connect", "frame", "hold"}), {"after": 0.0}),
    "close": (frozenset({"frame", "hold"}), {"code": 4401, "after": 0.0}),
    "code": (frozenset({"frame"}), {"code": 500, "message": None}),
    "slow": (frozenset({"http", "connect", "frame", "ping"}), {"seconds": 2.0}),
    "no_pong": (frozenset({"ping", "hold"}), {"after": 0.0}),
}
_DURATION_PARAMS = {"seconds", "after", "retry_after"}

FAULT_HELP = """\
fault syntax: TARGET=KIND[:MAIN][,key=value...]   (p = probability, default 1.0)
  kinds (targets they fit; MAIN parameter; other keys):
    status    http endpoints, connect   MAIN status (default 503); retry_after=S (429 gets 1 s by default)
    hang      http, connect, frames     MAIN seconds (default 600): no answer at all for that long
    malformed http, frames              the answer is not JSON
    truncated http, frames              the answer is JSON cut in the middle
    reset     http, connect, frames, hold   abrupt TCP reset (RST); hold: after=S
    close     frames, hold              MAIN close code (default 4401); hold: after=S
    code      frames                    MAIN response code (default 500): error response frame
    slow      http, connect, frames, ping   MAIN seconds (default 2): answer late
    no_pong   ping, hold                pings get no pong (hold: every ping of the socket, after=S)
  targets: anonymous-authorize authenticate csds signup connect ping hold, a frame type
           (cm.ConsumerRequestConversation, GetClock, ..., unknown, malformed) or * for all
  examples: --fault authenticate=status:503,p=0.1   --fault anonymous-authorize=status:429,retry_after=2
            --fault connect=status:401,p=0.05   --fault hold=close:4407,after=30,p=0.2   --fault ping=no_pong
            --fault cm.ConsumerRequestConversation=code:500,p=0.01   --fault GetClock=slow:3
"""

LATENCY_HELP = """\
latency syntax: TARGET=FIXED[+DIST:ARG[:ARG]]   (times in ms; suffix s or ms allowed)
    uniform:J         FIXED + U(0, J)
    normal:SD         FIXED + N(0, SD), never below 0
    lognormal:M[:S]   FIXED + lognormal with median M and sigma S (default 0.5)
  examples: --latency authenticate=20   --latency 'anonymous-authorize=5+uniform:10'
            --latency 'cm.ConsumerRequestConversation=2+lognormal:8:0.7'   --latency '*=1+normal:0.5'
"""


# ---------------------------------------------------------------------- latency (harness/protocol/latency.py)
# ---------------------------------------------------------------------- faults
@dataclass(frozen=True)
class FaultSpec:
    kind: str
    p: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.params.get(key, KINDS[self.kind][1].get(key))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "p": self.p}
        for key, default in KINDS[self.kind][1].items():
            value = self.params.get(key, default)
            if value is not None:
                out[key] = value
        return out


_MAIN_PARAM = {
    "status": "status",
    "hang": "seconds",
    "close": "code",
    "code": "code",
    "slow": "seconds",
    "reset": "after",
}


def fault_from_text(text: str) -> FaultSpec:
    head, *pairs = [part.strip() for part in text.split(",")]
    kind, _, main = head.partition(":")
    raw: dict[str, Any] = {}
    if main:
        if kind not in _MAIN_PARAM:
            raise ConfigError(f"fault kind {kind!r} takes no ':' value")
        raw[_MAIN_PARAM[kind]] = main
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r} in {text!r}")
        raw[key.strip()] = value.strip()
    raw["kind"] = kind.strip()
    return fault_from_json(raw, "fault")


def fault_from_json(value: Any, where: str) -> FaultSpec:
    if isinstance(value, str):
        try:
            return fault_from_text(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a fault must be an object like {{'kind': 'status', 'status': 503, 'p': 0.1}}")
    kind = value.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
    defaults = KINDS[kind][1]
    unknown = set(value) - set(defaults) - {"kind", "p"}
    if unknown:
        raise ConfigError(f"{where}: {kind} takes {sorted(defaults) + ['p']}, not {sorted(unknown)}")
    try:
        p = float(value.get("p", 1.0))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: p must be a number") from None
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{where}: p must be within 0..1, got {p}")
    params: dict[str, Any] = {}
    for key in defaults:
        if key not in value or value[key] is None:
            continue
        raw = value[key]
        if key in _DURATION_PARAMS:
            params[key] = parse_duration(raw, "s")
        elif key in ("status", "code"):
            params[key] = _int(raw, where, key)
        else:
            params[key] = str(raw)[:128]
    if kind == "status" and not 400 <= params.get("status", 503) <= 599:
        raise ConfigError(f"{where}: status must be an HTTP error status 400..599")
    if kind == "code" and not 300 <= params.get("code", 500) <= 599:
        raise ConfigError(f"{where}: code must be an error code 300..599")
    if kind == "close":
        code = params.get("code", 4401)
        if not (code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or 3000 <= code <= 4999):
            raise ConfigError(f"{where}: close code {code} cannot be sent (1000-1003, 1007-1011 or 3000-4999)")
    return FaultSpec(kind, p, params)


def _int(raw: Any, where: str, key: str) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        return int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be an integer, got {raw!r}") from None


def _check_target(target: Any, where: str) -> str:
    if not isinstance(target, str) or not _TARGET_RE.match(target):
        raise ConfigError(f"{where}: bad target name {target!r}")
    return target


# ---------------------------------------------------------------------- the plan
@dataclass
class FaultPlan:
    """Latency and faults per target, and seeded draws (one generator per target)."""

    latency: dict[str, LatencySpec] = field(default_factory=dict)
    faults: dict[str, list[FaultSpec]] = field(default_factory=dict)
    seed: int | None = None
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)
    _resolved: dict[str, tuple[LatencySpec | None, tuple[FaultSpec, ...]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for target, specs in self.faults.items():
            cat = category(target)
            total = 0.0
            for spec in specs:
                fits = KINDS[spec.kind][0]
                if target != WILDCARD and cat not in fits:
                    raise ConfigError(
                        f"faults.{target}: {spec.kind} does not apply to {cat} targets (fits {', '.join(sorted(fits))})"
                    )
                total += spec.p
            if total > 1.0 + 1e-9:
                raise ConfigError(f"faults.{target}: probabilities add up to {total:g} > 1")

    @classmethod
    def from_json(cls, cfg: Any) -> FaultPlan:
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            raise ConfigError("the fault configuration must be a JSON object with 'latency', 'faults', 'seed'")
        unknown = set(cfg) - set(PLAN_KEYS)
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)} (expected {', '.join(PLAN_KEYS)})")
        seed = cfg.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError("seed must be an integer or null")
        latency_cfg = cfg.get("latency") or {}
        faults_cfg = cfg.get("faults") or {}
        if not isinstance(latency_cfg, dict) or not isinstance(faults_cfg, dict):
            raise ConfigError("latency and faults must be objects keyed by target")
        latency = {_check_target(t, "latency"): latency_from_json(v, f"latency.{t}") for t, v in latency_cfg.items()}
        faults: dict[str, list[FaultSpec]] = {}
        for target, value in faults_cfg.items():
            _check_target(target, "faults")
            items = value if isinstance(value, list) else [value]
            faults[target] = [fault_from_json(item, f"faults.{target}[{i}]") for i, item in enumerate(items)]
        return cls(latency, faults, seed)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "latency": {t: spec.to_json() for t, spec in self.latency.items()},
            "faults": {t: [s.to_json() for s in specs] for t, specs in self.faults.items()},
        }

    def with_worker(self, index: int) -> FaultPlan:
        """A copy whose draws differ per worker process but stay reproducible."""
        seed = None if self.seed is None else self.seed * 1000 + index
        return FaultPlan(dict(self.latency), dict(self.faults), seed)

    def _resolve(self, target: str) -> tuple[LatencySpec | None, tuple[FaultSpec, ...]]:
        cached = self._resolved.get(target)
        if cached is None:
            latency = self.latency.get(target, self.latency.get(WILDCARD))
            if latency is not None and not latency.active:
                latency = None
            specs = self.faults.get(target)
            if specs is None:
                cat = category(target)
                specs = [s for s in self.faults.get(WILDCARD, ()) if cat in KINDS[s.kind][0]]
            cached = self._resolved[target] = (latency, tuple(s for s in specs if s.p > 0))
        return cached

    def _rng(self, target: str) -> random.Random:
        rng = self._rngs.get(target)
        if rng is None:
            rng = self._rngs[target] = random.Random(None if self.seed is None else f"{self.seed}:{target}")
        return rng

    def decide(self, target: str) -> tuple[float, FaultSpec | None]:
        """(injected delay in seconds, the fault to inject or None) for one request of ``target``."""
        latency, specs = self._resolve(target)
        if latency is None and not specs:
            return 0.0, None
        rng = self._rng(target)
        delay = latency.sample_s(rng) if latency is not None else 0.0
        if specs:
            draw = rng.random()
            cumulative = 0.0
            for spec in specs:
                cumulative += spec.p
                if draw < cumulative:
                    return delay, spec
        return delay, None

    def has_any(self, target: str) -> bool:
        latency, specs = self._resolve(target)
        return latency is not None or bool(specs)


def parse_cli(latency_args: list[str], fault_args: list[str], seed: int | None, base: Any = None) -> FaultPlan:
    """The plan from ``--latency``/``--fault`` flags on top of a config file's ``latency``/``faults``."""
    cfg = dict(base or {})
    latency = dict(cfg.get("latency") or {})
    faults = {t: (list(v) if isinstance(v, list) else [v]) for t, v in (cfg.get("faults") or {}).items()}
    for arg in latency_args:
        target, sep, spec = arg.partition("=")
        if not sep:
            raise ConfigError(f"--latency {arg!r}: expected TARGET=SPEC")
        latency[target.strip()] = latency_from_text(spec).to_json()
    for arg in fault_args:
        target, sep, spec = arg.partition("=")
        if not sep:
            raise ConfigError(f"--fault {arg!r}: expected TARGET=KIND[...]")
        faults.setdefault(target.strip(), []).append(fault_from_text(spec).to_json())
    if seed is not None:
        cfg["seed"] = seed
    cfg["latency"] = latency
    cfg["faults"] = faults
    return FaultPlan.from_json(cfg)
