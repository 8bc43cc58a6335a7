"""The Locust command-line options (``--lp-*``) the settings come from: one declaration per setting.

Each option names its flag, its environment variable, its help and its default here;
:meth:`harness.settings.Settings.from_options` reads and validates it. Locust builds its command
line, its config-file keys and the web UI's start form from these declarations.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from harness.settings import (
    AUTHS,
    CONSUMERS,
    EMULATOR_ACCOUNT,
    IDENTITIES,
    KEEPALIVES,
    ON_DROP,
    ON_TARGET_DOWN,
    SCENARIOS,
    SESSIONS,
    UI_ALLOW_PATHS_ENV,
    UI_ALLOW_PATHS_FLAG,
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
        "--lp-proxy",
        "LP_PROXY",
        "HTTP proxy for the IDP calls and the WebSocket (CONNECT tunnels): http://[user:pass@]host:port, for "
        "every target, the embedded emulator too; none (or direct): no proxy. Unset: HTTPS_PROXY / HTTP_PROXY / "
        "NO_PROXY as requests reads them, never for the embedded emulator. See docs/scale-out.md.",
        default="",
        include_in_web_ui=False,
    )
    add(
        "--lp-source-addresses",
        "LP_SOURCE_ADDRESSES",
        "Local IPs and/or CIDRs (comma-separated) the WebSocket sockets leave from in turn, each its own "
        "ephemeral port range per target (to the proxy, with one); checked at start. Unset: loopback "
        "targets get 64 loopback addresses. See docs/scale-out.md.",
        default="",
        include_in_web_ui=False,
    )
    add(
        "--lp-scenario",
        "LP_SCENARIO",
        "Scenario profile recorded in reports (smoke, load, soak, chat, custom); spike, breakpoint and arrival "
        "also run their shape (scenarios/shapes.py, docs/shapes.md).",
        default="custom",
        choices=list(SCENARIOS),
    )
    add(
        "--lp-arrival-rate",
        "LP_ARRIVAL_RATE",
        "Open model: new sessions per second whatever each holds, e.g. '20', or a ramp over the run time "
        "'5:50'; -u is then the cap of sessions at once (arrivals finding no free user are dropped). Empty: off.",
        default="",
    )
    add(
        "--lp-breakpoint-steps",
        "LP_BREAKPOINT_STEPS",
        "Breakpoint: steps of users up to -u (step k runs k/N of -u), each judged on its own window.",
        default="10",
    )
    add(
        "--lp-breakpoint-step-time",
        "LP_BREAKPOINT_STEP_TIME",
        "Breakpoint: seconds each step holds (0: the run time / steps, or 60 s without a run time).",
        default="0",
    )
    parser.add_argument("--lp-arrival-plan", default="", help=argparse.SUPPRESS, include_in_web_ui=False)
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
    add(
        "--lp-prometheus-port",
        "LP_PROMETHEUS_PORT",
        "Serve the run's live numbers at /metrics for Prometheus (master or the only process) on this port of "
        "127.0.0.1, or on HOST:PORT (0.0.0.0:9646: every interface); 0: off. See docs/monitoring.md.",
        default="0",
        include_in_web_ui=False,
    )
    add(
        "--lp-prometheus-linger",
        "LP_PROMETHEUS_LINGER",
        "Seconds the process waits at its end for one scrape of /metrics that has the final numbers "
        "(0: exit at once; the scrape interval or more).",
        default="15",
        include_in_web_ui=False,
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
