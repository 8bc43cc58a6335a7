"""The emulator's options as one typed object, and the config-file loader (JSON or TOML)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.emulator.faults import ConfigError, FaultPlan


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    account: str | None = None
    key_bits: int = 1024
    anon_token_lifetime: float = 600.0  # UNAUTH: the external anonymous token lasts 10 minutes
    anon_refresh_window: float = 730 * 3600.0  # UNAUTH: refreshable for 730 hours
    lp_token_lifetime: float = 3600.0  # not documented: our choice
    idle_timeout: float = 120.0  # not documented ("send something every 60 s"): our choice
    init_timeout: float = 5.0  # InitConnection grace ("a few seconds")
    auth_failure: str = "http"  # http: refuse the upgrade; close: accept, then close 4401/4407
    trust_keys: list[str] = field(default_factory=list)  # PEM files of trusted external public keys
    trust_tutorial_key: bool = True
    tls: bool = False
    tls_dir: str | None = None
    tls_cert: str | None = None  # set by the --processes parent so every worker serves one certificate
    tls_key: str | None = None
    processes: int = 1
    backlog: int = 4096
    log_level: str = "INFO"
    plan: FaultPlan = field(default_factory=FaultPlan)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.key_bits not in (1024, 2048, 3072, 4096):
            raise ConfigError("key-bits must be 1024, 2048, 3072 or 4096")
        for name in ("anon_token_lifetime", "lp_token_lifetime", "idle_timeout", "init_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0")
        if self.anon_refresh_window < 0:
            raise ConfigError("anon-refresh-window must be >= 0")
        if self.auth_failure not in ("http", "close"):
            raise ConfigError("auth-failure must be http or close")
        if not 1 <= self.processes <= 64:
            raise ConfigError("processes must be 1..64")
        for path in self.trust_keys:
            if not Path(path).is_file():
                raise ConfigError(f"trust-key file not found: {path}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON (``.json``) or TOML (anything else) config file as a dict."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ConfigError("TOML config files need Python 3.11+ (or tomli); use JSON") from None
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be an object/table")
    return data
