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
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from harness import settings_values as values
from harness.protocol import paths
from harness.protocol.latency import LatencySpec
from harness.settings_values import SettingsError

IDENTITIES: Final = ("anonymous", "external")
SCENARIOS: Final = ("custom", "smoke", "load", "soak", "chat")
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
    scenario: str = "custom"
    label: str | None = None
    reports_dir: str = "reports"
    stop_is_success: bool = False  # SIGTERM/Ctrl-C is the run's normal end (exit on the verdict, not 6)
    timeline_interval_s: float = 10.0  # the run over time in the reports: one row this often (user/timeline.py)
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
            scenario=scenario,
            label=(getattr(options, "lp_label", None) or None),
            reports_dir=getattr(options, "lp_reports_dir", None) or "reports",
            stop_is_success=bool(getattr(options, "lp_stop_is_success", False)),
            timeline_interval_s=values.seconds(options, "lp_timeline_interval", minimum=0.5),
            threshold_files=values.listed(getattr(options, "lp_thresholds", None)),
            threshold_rules=values.listed(getattr(options, "lp_threshold", None)),
        )


def add_arguments(parser: Any) -> None:
    """Register the harness's options on Locust's parser (``events.init_command_line_parser``)."""

    def add(flag: str, env: str, help_: str, **kwargs: Any) -> None:
        parser.add_argument(flag, env_var=env, help=help_, **kwargs)

    add(
        "--lp-account",
        "LP_ACCOUNT",
        f"LivePerson account (site) id. Default against the embedded emulator: {EMULATOR_ACCOUNT}.",
        default="",
    )
    add(
        "--lp-idp",
        "LP_IDP",
        "IDP host or base URL (CSDS service 'idp'). Unset, with LP_ASYNCMESSAGINGENT unset too: "
        "the embedded emulator is started.",
        default="",
    )
    add(
        "--lp-asyncmessagingent",
        "LP_ASYNCMESSAGINGENT",
        "Messaging host or base URL (CSDS service 'asyncMessagingEnt').",
        default="",
    )
    add(
        "--lp-discovery",
        "LP_DISCOVERY",
        "CSDS host or base URL: look up LP_IDP and LP_ASYNCMESSAGINGENT for the "
        "account there (e.g. api.liveperson.net).",
        default="",
    )
    add(
        "--lp-identity",
        "LP_IDENTITY",
        "anonymous (the tutorial's flow) or external (each user signs its own RS256 JWT with --lp-external-key).",
        default="anonymous",
        choices=list(IDENTITIES),
    )
    add(
        "--lp-external-key",
        "LP_EXTERNAL_KEY",
        "PEM private key file that signs external identities (default: the tutorial's test key).",
        default="",
        include_in_web_ui=ui_may_edit_paths(),
    )
    add(
        "--lp-hold",
        "LP_HOLD",
        "Seconds each session holds its socket (with keepalive pings) before closing.",
        default="30",
    )
    add(
        "--lp-ping-interval",
        "LP_PING_INTERVAL",
        "Seconds between keepalive pings (the tutorial's wscat -k 60).",
        default="60",
    )
    add("--lp-pong-timeout", "LP_PONG_TIMEOUT", "Seconds to wait for a pong before the session fails.", default="10")
    add("--lp-connect-timeout", "LP_CONNECT_TIMEOUT", "Seconds for the WebSocket handshake.", default="10")
    add("--lp-request-timeout", "LP_REQUEST_TIMEOUT", "Seconds to wait for a response on the socket.", default="10")
    add("--lp-http-timeout", "LP_HTTP_TIMEOUT", "Seconds for each IDP call.", default="10")
    add("--lp-think-time", "LP_THINK_TIME", "Seconds a user waits between sessions.", default="0")
    add(
        "--lp-retry-pauses",
        "LP_RETRY_PAUSES",
        "Seconds a user pauses after its 1st, 2nd, 3rd failed attempt in a row (LivePerson's retry guidance), "
        "then exponential backoff with jitter. Any failure pauses; a 429 waits its Retry-After (>= 1 s).",
        default="5,10,15",
    )
    add(
        "--lp-backoff-base",
        "LP_BACKOFF_BASE",
        "Seconds: the backoff after the fixed pauses is random up to base * 2**k (LivePerson: 2, 4, 8 min).",
        default="120",
    )
    add(
        "--lp-backoff-cap",
        "LP_BACKOFF_CAP",
        "Seconds: no backoff pause is longer (a server's Retry-After is honoured, up to an hour).",
        default="600",
    )
    add(
        "--lp-on-target-down",
        "LP_ON_TARGET_DOWN",
        "When most attempts to a host fail unanswered (refused, reset, timeout): pause the users until it "
        "answers again, or abort the run (end reason 'target down').",
        default="pause",
        choices=list(ON_TARGET_DOWN),
    )
    add(
        "--lp-cleanup-attempts",
        "LP_CLEANUP_ATTEMPTS",
        "Tries to close a conversation a failed socket left open, through a new connection of the same "
        "consumer (0: leave it open).",
        default="4",
    )
    add(
        "--lp-on-drop",
        "LP_ON_DROP",
        "A socket that ends mid-hold (server close, reset, lost pong): fail the session, or reconnect as the "
        "same consumer and resume its conversation (4401: authenticate again; 4407: extend the identity first).",
        default="fail",
        choices=list(ON_DROP),
    )
    add(
        "--lp-reconnect-attempts",
        "LP_RECONNECT_ATTEMPTS",
        "With --lp-on-drop reconnect: tries per drop before the session counts as lost.",
        default="5",
    )
    add(
        "--lp-reconnect-delay",
        "LP_RECONNECT_DELAY",
        "Seconds before the first reconnect (jittered between half and all of it), doubling per further try; "
        "a 429 or 5xx waits the retry policy's pause if that is longer.",
        default="2",
    )
    add(
        "--lp-token-refresh",
        "LP_TOKEN_REFRESH",
        "Seconds before its LP token expires that a held session renews it and moves to a new socket with the "
        "same conversation (0: never; the server's 4401/4407 then ends the socket).",
        default="0",
    )
    add(
        "--lp-consumer",
        "LP_CONSUMER",
        "new: each session is a new consumer (a new identity); returning: each user is one consumer that comes "
        "back session after session (its identity extended at the IDP).",
        default="new",
        choices=list(CONSUMERS),
    )
    add(
        "--lp-session",
        "LP_SESSION",
        "tutorial: the tutorial's minimal flow (request a conversation, hold); realistic: as LivePerson's clients "
        "run it (subscribe to the consumer's conversations first, reuse an OPEN one, else request one).",
        default="tutorial",
        choices=list(SESSIONS),
    )
    add(
        "--lp-auth",
        "LP_AUTH",
        "header: the LP token in the socket's Authorization header; init-connection: no header, the token in an "
        "InitConnection request (as browsers do).",
        default="header",
        choices=list(AUTHS),
    )
    add(
        "--lp-keepalive",
        "LP_KEEPALIVE",
        "ping: WebSocket ping frames every --lp-ping-interval (step 'ping'); getclock: a GetClock request every "
        "--lp-getclock-interval (step 'get-clock').",
        default="ping",
        choices=list(KEEPALIVES),
    )
    add("--lp-getclock-interval", "LP_GETCLOCK_INTERVAL", "Seconds between GetClock keepalives.", default="30")
    add(
        "--lp-messages",
        "LP_MESSAGES",
        "Messages (ContentEvents) each session publishes, each answered by the agent (0: a silent hold).",
        default="0",
    )
    add(
        "--lp-message-interval",
        "LP_MESSAGE_INTERVAL",
        "Seconds between a session's messages: fixed, or fixed plus a distribution ('1+uniform:2', "
        "'1+normal:0.5', '0.5+lognormal:1:0.4').",
        default="1",
    )
    add("--lp-message-size", "LP_MESSAGE_SIZE", "Characters in each message's text.", default="20")
    add(
        "--lp-reply-timeout",
        "LP_REPLY_TIMEOUT",
        "Seconds a message may wait for the agent's reply; longer fails the session with 'no reply'.",
        default="10",
    )
    add(
        "--lp-typing",
        "LP_TYPING",
        "Send a ChatStateEvent COMPOSING before each message.",
        action="store_true",
        default=False,
    )
    add(
        "--lp-insecure",
        "LP_INSECURE",
        "Do not verify TLS certificates (only for self-signed test targets).",
        action="store_true",
        default=False,
    )
    add(
        "--lp-scenario",
        "LP_SCENARIO",
        "Scenario profile recorded in reports (smoke, load, soak, chat, custom).",
        default="custom",
        choices=list(SCENARIOS),
    )
    add("--lp-label", "LP_LABEL", "A label for this run in reports, e.g. the release under test.", default="")
    add(
        "--lp-stop-is-success",
        "LP_STOP_IS_SUCCESS",
        "A SIGTERM or Ctrl-C is the run's normal end (a soak an operator stops): exit on the thresholds "
        "and failures, not with the interrupted code 6.",
        action="store_true",
        default=False,
    )
    add(
        "--lp-timeline-interval",
        "LP_TIMELINE_INTERVAL",
        "Seconds per row of the run over time in the reports (summary.json's timeline, report.html's charts); "
        "rows merge as a long run grows, so an 8-hour run stays bounded.",
        default="10",
    )
    in_form = ui_may_edit_paths()  # path-like and emulator settings: not in the web UI's form (user/uiguard.py)
    add(
        "--lp-reports-dir",
        "LP_REPORTS_DIR",
        "Folder under which each run writes <run-id>/.",
        default="reports",
        include_in_web_ui=in_form,
    )
    add(
        "--lp-emulator-args",
        "LP_EMULATOR_ARGS",
        'Extra options for the embedded emulator (latency, faults), e.g. "--latency authenticate=80".',
        default="",
        include_in_web_ui=in_form,
    )
    add("--lp-thresholds", "LP_THRESHOLDS", "TOML (or JSON) file of thresholds (SLOs) evaluated at the end of the "
        "run; see docs/reports.md and scenarios/thresholds.sample.toml.", default="", include_in_web_ui=in_form)
    add(
        UI_ALLOW_PATHS_FLAG,
        UI_ALLOW_PATHS_ENV,
        "Let the web UI's start form change path-like and emulator settings (reports folder, key file, "
        "thresholds file, emulator options). Off: only on a machine nobody else can reach.",
        action="store_true",
        default=False,
        include_in_web_ui=False,
    )
    add("--lp-threshold", "LP_THRESHOLD", "One threshold rule, e.g. 'authenticate:p95<200' or "
        "'phase:socket:fail_ratio<2%;abortOnFail;delayAbortEval=30s'. Repeatable.", action="append", default=None)
    parser.add_argument("--lp-embedded-url", default="", help=argparse.SUPPRESS, include_in_web_ui=False)


def ui_may_edit_paths() -> bool:
    """Asked while the options are declared, before Locust parses them (the form is built from the
    declarations): so the command line or the environment, not a config file."""
    env = os.environ.get(UI_ALLOW_PATHS_ENV, "").strip().lower()
    return UI_ALLOW_PATHS_FLAG in sys.argv or env in ("1", "true", "yes", "on")


def wants_embedded_emulator(options: argparse.Namespace) -> bool:
    """No target given at all: the harness runs its own emulator."""
    return not any(
        (getattr(options, name, "") or "").strip() for name in ("lp_idp", "lp_asyncmessagingent", "lp_discovery")
    ) and not os.environ.get("LP_NO_EMBEDDED")
