"""The emulator's options as one typed object, and the config-file loader (JSON or TOML).

Every option is declared here once, on its field (:func:`~harness.emulator.options.option`):
the command line, the config-file keys and ``GET /admin/config`` are all made from these
declarations. Latency, faults and the draws' seed are not options but the fault plan's own
configuration (:data:`~harness.emulator.faults.PLAN_KEYS`), read from the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.emulator import options
from harness.emulator.agentplan import DEFAULT_REPLY_DELAY, AgentPlan
from harness.emulator.faults import ConfigError, FaultPlan
from harness.emulator.options import option
from harness.emulator.process import ADMIN_TOKEN_ENV
from harness.reports import tomlfile

NETWORK = "network"
IDENTITY = "identity"
SOCKET = "messaging socket"
AGENTS = "agents (the brand's side of each conversation; docs/emulator.md \"Agents\")"
AUTH_FAILURE_MODES = ("http", "close")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class EmulatorConfig:
    host: str = option("127.0.0.1", flag="--host", group=NETWORK, help="address to listen on (default 127.0.0.1)")
    port: int = option(0, flag="--port", group=NETWORK, type=int, help="port; 0 picks a free one (default 0)")
    admin_token: str | None = option(
        None,
        flag="--admin-token",
        group=NETWORK,
        metavar="TOKEN",
        secret=True,
        help=f"require 'Authorization: Bearer TOKEN' on /admin/* (default: ${ADMIN_TOKEN_ENV}, else open; "
        "set one whenever --host is beyond loopback)",
    )
    tls: bool = option(
        False,
        flag="--tls",
        group=NETWORK,
        kind="switch",
        help="serve https/wss with a self-signed certificate made at start",
    )
    tls_dir: str | None = option(
        None,
        flag="--tls-dir",
        group=NETWORK,
        metavar="DIR",
        help="where --tls writes cert.pem/key.pem (default: a new temp dir)",
    )
    backlog: int = option(4096, flag="--backlog", group=NETWORK, type=int, help="listen backlog (default 4096)")
    processes: int = option(
        1,
        flag="--processes",
        group=NETWORK,
        type=int,
        metavar="N",
        help="N worker processes on one port (SO_REUSEPORT); the admin API sums their ledgers (default 1)",
    )
    account: str | None = option(
        None, flag="--account", group=IDENTITY, help="serve only this account id (default: accept any account)"
    )
    key_bits: int = option(
        1024,
        flag="--key-bits",
        group=IDENTITY,
        type=int,
        help="RSA size of the emulator's signing keys (default 1024: LivePerson's example token has a 128-byte signature)",
    )
    anon_token_lifetime: float = option(  # UNAUTH: the external anonymous token lasts 10 minutes
        600.0,
        flag="--anon-token-lifetime",
        group=IDENTITY,
        type=float,
        metavar="S",
        help="lifetime of anonymous identity tokens in s (default 600, the docs' 10 minutes)",
    )
    anon_refresh_window: float = option(  # UNAUTH: refreshable for 730 hours
        730 * 3600.0,
        flag="--anon-refresh-window",
        group=IDENTITY,
        type=float,
        metavar="S",
        help="how long after expiry an anonymous token can still be extended, in s (default 2628000 = 730 h)",
    )
    lp_token_lifetime: float = option(  # not documented: our choice
        3600.0,
        flag="--lp-token-lifetime",
        group=IDENTITY,
        type=float,
        metavar="S",
        help="lifetime of LP tokens in s (default 3600); a socket is closed when its token expires "
        "(4407 for anonymous identities, 4401 for external ones)",
    )
    token_cache_s: float = option(  # our choice: the hot path's cache, bounded in time
        60.0,
        flag="--token-cache-s",
        group=IDENTITY,
        type=float,
        metavar="S",
        help="a token issued or verified here skips the signature check on its uses in the next S s "
        "(default 60: a flow's retries; memory is the token rate over S s; 0 = check every use in full)",
    )
    trust_keys: list[str] = option(  # PEM files of trusted external public keys
        default_factory=list,
        flag="--trust-key",
        group=IDENTITY,
        kind="list",
        metavar="PEMFILE",
        aliases=("trust-keys",),
        help="also trust external JWTs signed by this RSA public key (repeatable)",
    )
    trust_tutorial_key: bool = option(
        True,
        flag="--no-tutorial-key",
        group=IDENTITY,
        kind="negated",
        help="do not trust the tutorial's 'Further Testing' public key (trusted by default)",
    )
    idle_timeout: float = option(  # not documented ("send something every 60 s"): our choice
        120.0,
        flag="--idle-timeout",
        group=SOCKET,
        type=float,
        metavar="S",
        help="close a socket with 1008 after S seconds with no frame or ping from the client (default 120)",
    )
    init_timeout: float = option(  # InitConnection grace ("a few seconds")
        5.0,
        flag="--init-timeout",
        group=SOCKET,
        type=float,
        metavar="S",
        help="a socket opened without an Authorization header must send InitConnection within S s (default 5)",
    )
    auth_failure: str = option(
        "http",
        flag="--auth-failure",
        group=SOCKET,
        choices=AUTH_FAILURE_MODES,
        help="bad token at the handshake: refuse the upgrade with HTTP 401/403 (http, default) "
        "or accept and close with 4401/4407 (close)",
    )
    rate_limit: float = option(  # RETRY: "clients sending bursty traffic may be rate-limited"; numbers are ours
        0.0,
        flag="--rate-limit",
        group=NETWORK,
        type=float,
        metavar="R",
        help="answer an account's requests beyond R per second (HTTP, handshakes and socket requests, a "
        "burst of R allowed) with 429 and Retry-After (default 0: no limit)",
    )
    agents: int = option(
        0,
        flag="--agents",
        group=AGENTS,
        type=int,
        metavar="N",
        help="agents answering conversations requested without a skill, or with one that has no agents of "
        "its own (default 0: nobody answers, as before)",
    )
    agent_skills: list[str] = option(
        default_factory=list,
        flag="--agent-skill",
        group=AGENTS,
        kind="list",
        metavar="SKILL=N",
        help="N agents for conversations requested with skillId SKILL (repeatable)",
    )
    agent_conversations: int = option(
        1,
        flag="--agent-conversations",
        group=AGENTS,
        type=int,
        metavar="K",
        help="conversations one agent holds at once; more wait in their skill's queue (default 1)",
    )
    agent_reply_delay: str = option(
        DEFAULT_REPLY_DELAY,
        flag="--agent-reply-delay",
        group=AGENTS,
        metavar="SPEC",
        help=f"time from a consumer message to its reply, in the latency syntax (ms; default {DEFAULT_REPLY_DELAY})",
    )
    agent_reply_probability: float = option(
        1.0,
        flag="--agent-reply-probability",
        group=AGENTS,
        type=float,
        metavar="P",
        help="chance that a consumer message gets a reply (default 1)",
    )
    agent_typing: bool = option(
        False,
        flag="--agent-typing",
        group=AGENTS,
        kind="switch",
        help="agents send ChatStateEvent COMPOSING when they read a message, before the reply",
    )
    log_level: str = option("INFO", flag="--log-level", choices=LOG_LEVELS, normalise=str.upper, help="(default INFO)")
    # Internal: no option. The --processes parent sets the certificate so every worker serves one.
    tls_cert: str | None = None
    tls_key: str | None = None
    plan: FaultPlan = field(default_factory=FaultPlan)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.key_bits not in (1024, 2048, 3072, 4096):
            raise ConfigError("key-bits must be 1024, 2048, 3072 or 4096")
        for name in ("anon_token_lifetime", "lp_token_lifetime", "idle_timeout", "init_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0")
        for name in ("anon_refresh_window", "token_cache_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 0")
        if not 1 <= self.processes <= 64:
            raise ConfigError("processes must be 1..64")
        for path in self.trust_keys:
            if not Path(path).is_file():
                raise ConfigError(f"trust-key file not found: {path}")
        if not (self.rate_limit == 0 or 0.1 <= self.rate_limit <= 1e6):
            raise ConfigError(f"rate-limit must be 0 (off) or 0.1..1000000 requests/s, got {self.rate_limit}")
        AgentPlan.from_config(self)

    def agent_plan(self) -> AgentPlan:
        return AgentPlan.from_config(self)


def agent_plan_from_json(data: Any, processes: int = 1) -> AgentPlan:
    """``PUT /admin/agents``: the agent options under their config-file keys (absent ones take their
    defaults), read by the same declarations as the command line and config files."""
    if not isinstance(data, dict):
        raise ConfigError("the agent configuration must be a JSON object keyed by the --agent* option names")
    fields = {spec.key: (f.name, spec) for f, spec in options.options(EmulatorConfig) if spec.group == AGENTS}
    unknown = sorted(k for k in data if k.replace("_", "-") not in fields)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} (expected {', '.join(fields)})")
    values = options.file_defaults(EmulatorConfig, data, "agents")
    names = {spec.dest: name for name, spec in fields.values()}
    config = replace(EmulatorConfig(), processes=processes, **{names[dest]: v for dest, v in values.items()})
    return AgentPlan.from_config(config)


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
            data = tomlfile.loads(text)
        except tomlfile.TomlError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be an object/table")
    return data
