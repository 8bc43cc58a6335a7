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
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from harness.protocol import paths

IDENTITIES: Final = ("anonymous", "external")
SCENARIOS: Final = ("custom", "smoke", "load", "soak")
EMULATOR_ACCOUNT: Final = "lp-harness"  # the account used against the embedded emulator when none is set


class SettingsError(ValueError):
    """A setting that cannot work; the message names the setting and how to fix it."""


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
    verify_tls: bool = True
    scenario: str = "custom"
    label: str | None = None
    reports_dir: str = "reports"
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
        idp = _base_url("LP_IDP (--lp-idp)", idp_raw)
        messaging = _base_url("LP_ASYNCMESSAGINGENT (--lp-asyncmessagingent)", msg_raw)
        identity = getattr(options, "lp_identity", "anonymous")
        if identity not in IDENTITIES:
            raise SettingsError(f"--lp-identity must be one of {', '.join(IDENTITIES)}, not {identity!r}")
        key_file = getattr(options, "lp_external_key", None) or None
        if identity == "external" and key_file and not Path(key_file).is_file():
            raise SettingsError(f"--lp-external-key {key_file!r} is not a readable file: give the PEM private key path")
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
            hold_s=_seconds(options, "lp_hold", minimum=0.0),
            ping_interval_s=_seconds(options, "lp_ping_interval", minimum=0.05),
            pong_timeout_s=_seconds(options, "lp_pong_timeout", minimum=0.01),
            connect_timeout_s=_seconds(options, "lp_connect_timeout", minimum=0.01),
            request_timeout_s=_seconds(options, "lp_request_timeout", minimum=0.01),
            http_timeout_s=_seconds(options, "lp_http_timeout", minimum=0.01),
            think_time_s=_seconds(options, "lp_think_time", minimum=0.0),
            verify_tls=not bool(getattr(options, "lp_insecure", False)),
            scenario=scenario,
            label=(getattr(options, "lp_label", None) or None),
            reports_dir=getattr(options, "lp_reports_dir", None) or "reports",
            threshold_files=_listed(getattr(options, "lp_thresholds", None)),
            threshold_rules=_listed(getattr(options, "lp_threshold", None)),
        )


def _listed(value: object) -> tuple[str, ...]:
    """A repeatable option: a list (command line), or one string (env var / web UI) split on newlines and ';;'."""
    if not value:
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).replace(";;", "\n").splitlines() if part.strip())
    return tuple(out)


def _base_url(name: str, value: str) -> str:
    try:
        return paths.base_url(value)
    except ValueError as exc:
        raise SettingsError(
            f"{name} is malformed ({exc}): give a host name like va.idp.liveperson.net or a URL like http://127.0.0.1:8080"
        ) from None


def _seconds(options: argparse.Namespace, dest: str, *, minimum: float) -> float:
    flag = "--" + dest.replace("_", "-")
    raw = getattr(options, dest, None)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{flag} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{flag} must be at least {minimum} seconds, not {raw!r}")
    return value


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
        is_secret=True,
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
        "--lp-insecure",
        "LP_INSECURE",
        "Do not verify TLS certificates (only for self-signed test targets).",
        action="store_true",
        default=False,
    )
    add(
        "--lp-scenario",
        "LP_SCENARIO",
        "Scenario profile recorded in reports (smoke, load, soak, custom).",
        default="custom",
        choices=list(SCENARIOS),
    )
    add("--lp-label", "LP_LABEL", "A label for this run in reports, e.g. the release under test.", default="")
    add("--lp-reports-dir", "LP_REPORTS_DIR", "Folder under which each run writes <run-id>/.", default="reports")
    add(
        "--lp-emulator-args",
        "LP_EMULATOR_ARGS",
        'Extra options for the embedded emulator (latency, faults), e.g. "--latency authenticate=80".',
        default="",
    )
    add("--lp-thresholds", "LP_THRESHOLDS", "TOML (or JSON) file of thresholds (SLOs) evaluated at the end of the "
        "run; see docs/reports.md and scenarios/thresholds.sample.toml.", default="")
    add("--lp-threshold", "LP_THRESHOLD", "One threshold rule, e.g. 'authenticate:p95<200' or "
        "'phase:socket:fail_ratio<2%;abortOnFail;delayAbortEval=30s'. Repeatable.", action="append", default=None)
    parser.add_argument("--lp-embedded-url", default="", help=argparse.SUPPRESS, include_in_web_ui=False)


def wants_embedded_emulator(options: argparse.Namespace) -> bool:
    """No target given at all: the harness runs its own emulator."""
    return not any(
        (getattr(options, name, "") or "").strip() for name in ("lp_idp", "lp_asyncmessagingent", "lp_discovery")
    ) and not os.environ.get("LP_NO_EMBEDDED")
