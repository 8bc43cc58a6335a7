"""Reading one setting's raw value (command line, conf file, env, web UI) into a checked value.

Kept apart from :mod:`harness.settings`, which declares every setting once, so that file stays a
readable list of settings; each helper raises :class:`SettingsError` naming the option and the fix.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from harness.protocol import paths, retry, tokens
from harness.protocol.latency import ConfigError, LatencySpec, latency_from_text


class SettingsError(ValueError):
    """A setting that cannot work; the message names the setting and how to fix it."""


def check_private_key(path: str) -> None:
    """The key file must be an RSA private key in PEM: found now, not by every user at start."""
    flag = f"--lp-external-key {path!r}"
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"{flag} cannot be read ({exc.strerror}): give the PEM private key path") from None
    if not pem.strip():
        raise SettingsError(f"{flag} is empty: give the brand's RSA private key in PEM")
    if b"PUBLIC KEY" in pem and b"PRIVATE KEY" not in pem:
        raise SettingsError(f"{flag} is a public key: external identities are signed with the private key")
    try:
        tokens.load_private_key(pem)
    except Exception as exc:  # ValueError, TypeError (a password), UnsupportedAlgorithm: all one answer
        raise SettingsError(f"{flag} is not an RSA private key in PEM ({str(exc)[:80]})") from None


def listed(value: object) -> tuple[str, ...]:
    """A repeatable option: a list (command line), or one string (env var / web UI) split on newlines and ';;'."""
    if not value:
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).replace(";;", "\n").splitlines() if part.strip())
    return tuple(out)


def base_url(name: str, value: str) -> str:
    try:
        return paths.base_url(value)
    except ValueError as exc:
        raise SettingsError(
            f"{name} is malformed ({exc}): give a host name like va.idp.liveperson.net or a URL like http://127.0.0.1:8080"
        ) from None


def pauses(options: argparse.Namespace) -> tuple[float, ...]:
    raw = getattr(options, "lp_retry_pauses", None)
    try:
        return retry.parse_pauses("5,10,15" if raw is None else str(raw))
    except ValueError:
        raise SettingsError(
            f"--lp-retry-pauses must be seconds separated by commas, e.g. '5,10,15', not {raw!r}"
        ) from None


def choice(options: argparse.Namespace, dest: str, choices: tuple[str, ...]) -> Any:
    raw = getattr(options, dest, None) or choices[0]
    if raw not in choices:
        raise SettingsError(f"--{dest.replace('_', '-')} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def count(options: argparse.Namespace, dest: str) -> int:
    raw = getattr(options, dest, None)
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        raise SettingsError(f"--{dest.replace('_', '-')} must be a whole number >= 0, not {raw!r}")
    return value


def seconds(options: argparse.Namespace, dest: str, *, minimum: float) -> float:
    flag = "--" + dest.replace("_", "-")
    raw = getattr(options, dest, None)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{flag} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{flag} must be at least {minimum} seconds, not {raw!r}")
    return value


def delay(options: argparse.Namespace, dest: str) -> LatencySpec:
    """A delay spec in seconds: ``2``, ``1+uniform:2``, ``0.5+lognormal:1:0.4`` (``ms`` suffixes allowed)."""
    raw = str(getattr(options, dest, None) or "0").strip()
    try:
        return latency_from_text(raw, unit="s")
    except ConfigError as exc:
        raise SettingsError(
            f"--{dest.replace('_', '-')} {raw!r} is not a delay ({exc}): give seconds, e.g. '2' or '1+uniform:2'"
        ) from None


def arrival_rate(options: argparse.Namespace, *, required: bool) -> tuple[float, float] | None:
    """``--lp-arrival-rate``: ``RATE`` or a ramp ``FROM:TO`` in sessions/s (harness.user.arrival); None: off.

    A ramp runs over the run time, so it needs one (checked where the run is driven, not on a worker).
    """
    raw = str(getattr(options, "lp_arrival_rate", None) or "").strip()
    fix = "give sessions per second, e.g. '20', or a ramp over the run time, e.g. '5:50'"
    if not raw:
        if required:
            raise SettingsError(f"--lp-scenario arrival needs --lp-arrival-rate: {fix}")
        return None
    first, sep, second = raw.partition(":")
    try:
        rate_from = float(first)
        rate_to = float(second) if sep else rate_from
    except ValueError:
        raise SettingsError(f"--lp-arrival-rate {raw!r} is not a rate: {fix}") from None
    rates = (rate_from, rate_to)
    if not all(math.isfinite(r) and r >= 0 for r in rates) or not any(rates):
        raise SettingsError(f"--lp-arrival-rate {raw!r} must be >= 0 and not all 0: {fix}")
    if rate_from != rate_to and not getattr(options, "run_time", None) and not getattr(options, "worker", False):
        raise SettingsError(f"--lp-arrival-rate {raw!r} ramps over the run time: give one with -t / --run-time")
    return rates
