"""Delays drawn from a spec: a fixed part plus an optional distribution, in one text syntax.

``FIXED[+DIST:ARG[:ARG]]`` (uniform, normal, lognormal; times with an ``s`` or ``ms`` suffix)
serves the emulator's latency injection and any other delay both sides describe the same way,
such as the consumer's interval between messages. Pure: the caller brings the random source.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """An invalid latency/fault configuration (the message says what and where)."""


@dataclass(frozen=True)
class LatencySpec:
    fixed_ms: float = 0.0
    dist: str = "none"  # none | uniform | normal | lognormal
    jitter_ms: float = 0.0  # uniform width, normal SD, lognormal median
    sigma: float = 0.5  # lognormal only

    def sample_s(self, rng: random.Random) -> float:
        ms = self.fixed_ms
        if self.dist == "uniform":
            ms += rng.uniform(0.0, self.jitter_ms)
        elif self.dist == "normal":
            ms += rng.gauss(0.0, self.jitter_ms)
        elif self.dist == "lognormal" and self.jitter_ms > 0:
            ms += rng.lognormvariate(math.log(self.jitter_ms), self.sigma)
        return ms / 1000.0 if ms > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fixed_ms": self.fixed_ms, "dist": self.dist}
        if self.dist != "none":
            out["jitter_ms"] = self.jitter_ms
        if self.dist == "lognormal":
            out["sigma"] = self.sigma
        return out

    @property
    def active(self) -> bool:
        return self.fixed_ms > 0 or (self.dist != "none" and self.jitter_ms > 0)


def parse_duration(text: str | float | int, default_unit: str = "s") -> float:
    """ "2" / "2s" / "150ms" -> value in ``default_unit`` ("s" or "ms")."""
    if isinstance(text, bool):
        raise ConfigError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = text.strip().lower()
        scale = 1.0
        if t.endswith("ms"):
            t, scale = t[:-2], (1.0 if default_unit == "ms" else 0.001)
        elif t.endswith("s"):
            t, scale = t[:-1], (1000.0 if default_unit == "ms" else 1.0)
        try:
            value = float(t) * scale
        except ValueError:
            raise ConfigError(f"not a duration: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"duration must be finite and >= 0: {text!r}")
    return value


def latency_from_text(text: str, unit: str = "ms") -> LatencySpec:
    """A spec from its text; numbers without a suffix are in ``unit`` ("ms" or "s")."""
    fixed_text, _, dist_text = text.partition("+")
    fixed = _ms(fixed_text or "0", unit)
    if not dist_text:
        return LatencySpec(fixed)
    name, *args = dist_text.split(":")
    name = name.strip().lower()
    if name not in ("uniform", "normal", "lognormal"):
        raise ConfigError(f"unknown latency distribution {name!r} (uniform, normal, lognormal)")
    if not args or len(args) > (2 if name == "lognormal" else 1):
        raise ConfigError(f"{name} takes {'M[:S]' if name == 'lognormal' else 'one value'}: {text!r}")
    jitter = _ms(args[0], unit)
    sigma = 0.5
    if len(args) == 2:
        try:
            sigma = float(args[1])
        except ValueError:
            raise ConfigError(f"sigma must be a number: {text!r}") from None
    return _checked_latency(LatencySpec(fixed, name, jitter, sigma))


def latency_from_json(value: Any, where: str) -> LatencySpec:
    if isinstance(value, str):
        try:
            return latency_from_text(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return latency_from_text(str(value))
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: latency must be an object, a number (ms) or a string like '20+uniform:10'")
    unknown = set(value) - {"fixed_ms", "dist", "jitter_ms", "sigma"}
    if unknown:
        raise ConfigError(f"{where}: unknown latency keys {sorted(unknown)}")
    try:
        spec = LatencySpec(
            parse_duration(value.get("fixed_ms", 0), "ms"),
            str(value.get("dist", "none")).lower(),
            parse_duration(value.get("jitter_ms", 0), "ms"),
            float(value.get("sigma", 0.5)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if spec.dist not in ("none", "uniform", "normal", "lognormal"):
        raise ConfigError(f"{where}: unknown dist {spec.dist!r} (none, uniform, normal, lognormal)")
    return _checked_latency(spec)


def _checked_latency(spec: LatencySpec) -> LatencySpec:
    if not (math.isfinite(spec.sigma) and 0 <= spec.sigma <= 10):
        raise ConfigError(f"sigma must be within 0..10, got {spec.sigma}")
    return spec


def _ms(text: str, unit: str) -> float:
    """A duration in ms from text whose bare numbers are in ``unit``."""
    return parse_duration(text, "s") * 1000.0 if unit == "s" else parse_duration(text, "ms")
