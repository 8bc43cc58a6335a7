"""One typed settings object for a run, and the Locust command-line options it comes from.

Every setting is a Locust option (``--lp-*``), so it works the way Locust users expect: on the
command line, in ``locust.conf``/``--config`` files (``lp-account = 123``), from the environment
(``LP_ACCOUNT``, ``LP_IDP``, ``LP_ASYNCMESSAGINGENT`` -- the tutorial's names -- and
``LP_<OPTION>`` for the rest) and as fields of the web UI's start form.
:meth:`Settings.from_options` validates them and raises :class:`SettingsError` naming the setting
and the fix, so a bad setting ends a run with one clear line instead of a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from harness import settings_network as network
from harness import settings_values as values
from harness.protocol import paths
from harness.protocol.latency import LatencySpec
from harness.settings_address import listen_address
from harness.settings_values import SettingsError

IDENTITIES: Final = ("anonymous", "external")
SCENARIOS: Final = ("custom", "smoke", "load", "soak", "chat", "spike", "breakpoint", "arrival")
ON_TARGET_DOWN: Final = ("pause", "abort")
ON_DROP: Final = ("fail", "reconnect")
CONSUMERS: Final = ("new", "returning")
SESSIONS: Final = ("tutorial", "realistic")
AUTHS: Final = ("header", "init-connection")
KEEPALIVES: Final = ("ping", "getclock")
EMULATOR_ACCOUNT: Final = "lp-harness"  # the account used against the embedded emulator when none is set
# Settings that name files or start processes: out of the web UI's form unless allowed (user/uiguard.py).
ACCOUNT_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")  # an account (site) id: one URL path segment
UI_PROTECTED: Final = ("lp_reports_dir", "lp_external_key", "lp_emulator_args", "lp_thresholds")
UI_ALLOW_PATHS_FLAG: Final = "--lp-ui-allow-paths"
UI_ALLOW_PATHS_ENV: Final = "LP_UI_ALLOW_PATHS"


@dataclass(frozen=True)
class Settings:
    """Everything a consumer user needs to run the tutorial's sequence against a target."""

    account: str
    idp: str  # base URL, e.g. https://va.idp.liveperson.net or http://127.0.0.1:8123
    messaging: str  # base URL of asyncMessagingEnt
    target: Literal["emulator", "real"] = "real"
    identity: Literal["anonymous", "external"] = "anonymous"
    external_key_file: str | None = None  # PEM private key used to sign external identities (secret)
    external_issuer: str = "https://idp.liveperson.net"
    hold_s: float = 30.0
    ping_interval_s: float = 60.0
    pong_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    http_timeout_s: float = 10.0
    think_time_s: float = 0.0
    retry_pauses_s: tuple[float, ...] = (5.0, 10.0, 15.0)  # after failed attempts 1, 2, 3 (RETRY), then backoff
    backoff_base_s: float = 120.0  # full-jitter exponential backoff after the fixed pauses: base * 2**k...
    backoff_cap_s: float = 600.0  # ... capped (a Retry-After too)
    on_target_down: Literal["pause", "abort"] = "pause"  # the circuit breaker tripped: wait, or end the run
    cleanup_attempts: int = 4  # closing a conversation left open through a new connection: tries (0: off)
    on_drop: Literal["fail", "reconnect"] = "fail"  # a socket lost mid-hold: fail the session, or reconnect
    reconnect_attempts: int = 5  # reconnects per drop before the session is lost
    reconnect_delay_s: float = 2.0  # the first reconnect's pause (jittered), doubling per further try
    token_refresh_s: float = 0.0  # renew an LP token this long before it expires mid-hold (0: never)
    consumer: Literal["new", "returning"] = "new"  # each session a new consumer, or one returning per user
    session: Literal["tutorial", "realistic"] = "tutorial"  # realistic: find an OPEN conversation first (user/journey.py)
    auth: Literal["header", "init-connection"] = "header"  # the socket's credential: a header, or InitConnection
    keepalive: Literal["ping", "getclock"] = "ping"  # WebSocket ping frames, or GetClock requests (browsers)
    getclock_interval_s: float = 30.0  # LivePerson's retry guidance: GetClock every 30 s
    messages: int = 0  # ContentEvents each session publishes (0: the tutorial's silent hold; user/talk.py)
    message_interval: LatencySpec = LatencySpec(1000.0)  # between a session's publishes: fixed + a distribution
    message_size: int = 20  # characters of each message's text
    reply_timeout_s: float = 10.0  # a message the agent has not answered by then fails the session ("no reply")
    typing: bool = False  # a ChatStateEvent COMPOSING before each message
    verify_tls: bool = True
    proxy: str = ""  # --lp-proxy: "" the environment's (never for the embedded emulator), "none", or a URL (secret)
    source_addresses: tuple[str, ...] = ()  # --lp-source-addresses, expanded: the sockets' local addresses in turn
    scenario: str = "custom"
    arrival_rate: tuple[float, float] | None = None  # open model: sessions/s, from -> to over the run (user/arrival.py)
    breakpoint_steps: int = 10  # breakpoint: -u reached in this many equal steps of users (user/breakpoint.py)
    breakpoint_step_s: float = 0.0  # seconds each step holds (0: the run time / steps, else 60)
    label: str | None = None
    reports_dir: str = "reports"
    stop_is_success: bool = False  # SIGTERM/Ctrl-C is the run's normal end (exit on the verdict, not 6)
    timeline_interval_s: float = 10.0  # the run over time in the reports: one row this often (user/timeline.py)
    prometheus_listen: tuple[str, int] | None = None  # /metrics on (host, port) (user/prometheus.py); None: off
    prometheus_linger_s: float = 15.0  # at the end, wait this long for a scrape of the final numbers
    threshold_files: tuple[str, ...] = ()
    threshold_rules: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_url(self) -> str:
        return paths.socket_url(self.messaging, self.account)

    def public(self) -> dict[str, Any]:
        """The settings as they may appear in reports: no secrets (the key file path only)."""
        data = asdict(self)
        data.pop("extra", None)
        data["socket_url"] = self.socket_url
        data["proxy"] = network.redacted(self.proxy)  # a proxy URL's password is a secret
        return data

    @classmethod
    def from_options(
        cls, options: argparse.Namespace, *, target: Literal["emulator", "real"] | None = None
    ) -> Settings:
        """Validate Locust's parsed options; raise SettingsError naming the bad setting."""
        account = (getattr(options, "lp_account", None) or "").strip()
        idp_raw = (getattr(options, "lp_idp", None) or "").strip()
        msg_raw = (getattr(options, "lp_asyncmessagingent", None) or "").strip()
        if not account:
            raise SettingsError(
                "LP_ACCOUNT is not set: give the account id with --lp-account, the LP_ACCOUNT environment "
                "variable or 'lp-account = ...' in locust.conf (or unset LP_IDP/LP_ASYNCMESSAGINGENT to use the "
                "embedded emulator)"
            )
        if not idp_raw or not msg_raw:
            missing = "LP_IDP" if not idp_raw else "LP_ASYNCMESSAGINGENT"
            raise SettingsError(
                f"{missing} is not set: give both LP_IDP and LP_ASYNCMESSAGINGENT (host names as in the tutorial, "
                "or base URLs), or --lp-discovery to look them up through CSDS, or neither to use the embedded emulator"
            )
        if not ACCOUNT_RE.fullmatch(account):
            raise SettingsError(
                f"LP_ACCOUNT {account[:80]!r} is not an account id (letters, digits, '-' and '_', as in "
                "'qa57221676'): check --lp-account / LP_ACCOUNT"
            )
        idp = values.base_url("LP_IDP (--lp-idp)", idp_raw)
        messaging = values.base_url("LP_ASYNCMESSAGINGENT (--lp-asyncmessagingent)", msg_raw)
        identity = getattr(options, "lp_identity", "anonymous")
        if identity not in IDENTITIES:
            raise SettingsError(f"--lp-identity must be one of {', '.join(IDENTITIES)}, not {identity!r}")
        key_file = getattr(options, "lp_external_key", None) or None
        if identity == "external" and key_file:
            values.check_private_key(key_file)
        scenario = getattr(options, "lp_scenario", "custom") or "custom"
        if scenario not in SCENARIOS:
            raise SettingsError(f"--lp-scenario must be one of {', '.join(SCENARIOS)}, not {scenario!r}")
        if scenario == "breakpoint" and not (getattr(options, "lp_threshold", None) or getattr(options, "lp_thresholds", None)):
            raise SettingsError(
                "--lp-scenario breakpoint steps the users up until a threshold breaks: give one with "
                "--lp-threshold RULE (e.g. 'authenticate:p95<200') or --lp-thresholds FILE"
            )
        return cls(
            account=account,
            idp=idp,
            messaging=messaging,
            target=target or ("emulator" if getattr(options, "lp_embedded_url", None) else "real"),
            identity=identity,
            external_key_file=key_file,
            hold_s=values.seconds(options, "lp_hold", minimum=0.0),
            ping_interval_s=values.seconds(options, "lp_ping_interval", minimum=0.05),
            pong_timeout_s=values.seconds(options, "lp_pong_timeout", minimum=0.01),
            connect_timeout_s=values.seconds(options, "lp_connect_timeout", minimum=0.01),
            request_timeout_s=values.seconds(options, "lp_request_timeout", minimum=0.01),
            http_timeout_s=values.seconds(options, "lp_http_timeout", minimum=0.01),
            think_time_s=values.seconds(options, "lp_think_time", minimum=0.0),
            retry_pauses_s=values.pauses(options),
            backoff_base_s=values.seconds(options, "lp_backoff_base", minimum=0.0),
            backoff_cap_s=values.seconds(options, "lp_backoff_cap", minimum=0.0),
            on_target_down=values.choice(options, "lp_on_target_down", ON_TARGET_DOWN),
            cleanup_attempts=values.count(options, "lp_cleanup_attempts"),
            on_drop=values.choice(options, "lp_on_drop", ON_DROP),
            reconnect_attempts=values.count(options, "lp_reconnect_attempts"),
            reconnect_delay_s=values.seconds(options, "lp_reconnect_delay", minimum=0.0),
            token_refresh_s=values.seconds(options, "lp_token_refresh", minimum=0.0),
            consumer=values.choice(options, "lp_consumer", CONSUMERS),
            session=values.choice(options, "lp_session", SESSIONS),
            auth=values.choice(options, "lp_auth", AUTHS),
            keepalive=values.choice(options, "lp_keepalive", KEEPALIVES),
            getclock_interval_s=values.seconds(options, "lp_getclock_interval", minimum=0.05),
            messages=values.count(options, "lp_messages"),
            message_interval=values.delay(options, "lp_message_interval"),
            message_size=values.count(options, "lp_message_size"),
            reply_timeout_s=values.seconds(options, "lp_reply_timeout", minimum=0.01),
            typing=bool(getattr(options, "lp_typing", False)),
            verify_tls=not bool(getattr(options, "lp_insecure", False)),
            proxy=network.proxy(options, (idp, messaging)),
            source_addresses=network.source_addresses(options),
            scenario=scenario,
            arrival_rate=values.arrival_rate(options, required=scenario == "arrival"),
            breakpoint_steps=max(1, values.count(options, "lp_breakpoint_steps")),
            breakpoint_step_s=values.seconds(options, "lp_breakpoint_step_time", minimum=0.0),
            label=(getattr(options, "lp_label", None) or None),
            reports_dir=getattr(options, "lp_reports_dir", None) or "reports",
            stop_is_success=bool(getattr(options, "lp_stop_is_success", False)),
            timeline_interval_s=values.seconds(options, "lp_timeline_interval", minimum=0.5),
            prometheus_listen=listen_address(options, "lp_prometheus_port"),
            prometheus_linger_s=values.seconds(options, "lp_prometheus_linger", minimum=0.0),
            threshold_files=values.listed(getattr(options, "lp_thresholds", None)),
            threshold_rules=values.listed(getattr(options, "lp_threshold", None)),
        )


def wants_embedded_emulator(options: argparse.Namespace) -> bool:
    """No target given at all: the harness runs its own emulator."""
    return not any(
        (getattr(options, name, "") or "").strip() for name in ("lp_idp", "lp_asyncmessagingent", "lp_discovery")
    ) and not os.environ.get("LP_NO_EMBEDDED")
