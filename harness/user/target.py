"""Which target a run loads, decided once on the master (or the only process) before any user starts.

No host given: the harness starts its own emulator. ``--lp-discovery``: the hosts come from
CSDS. Either way the settings and the threshold rules are validated here, so a bad setting ends
the run with one line naming it (exit code 2) instead of thousands of identical failures.
"""

from __future__ import annotations

import logging
import shlex
import sys

from locust.env import Environment

from harness.emulator.launcher import EmulatorProcess
from harness.reports.thresholds import Rule
from harness.settings import EMULATOR_ACCOUNT, Settings, SettingsError, wants_embedded_emulator
from harness.user import gate
from harness.user.discovery import discover
from harness.user.preflight import preflight
from harness.user.state import RunState, state_of
from harness.user.steps import STEP_PHASES, Phase

log = logging.getLogger("lp-harness")
EXIT_CONFIG_ERROR = 2


def resolve_target(environment: Environment) -> None:
    """Master/local: fill in the hosts (embedded emulator or CSDS) and validate; exit 2 on a bad setting."""
    options = environment.parsed_options
    state = state_of(environment)
    try:
        _check_load_shape(options)
        if wants_embedded_emulator(options):
            _start_embedded_emulator(environment, state)
        elif (options.lp_discovery or "").strip() and not (options.lp_idp and options.lp_asyncmessagingent):
            found = discover(options.lp_discovery, options.lp_account, getattr(options, "lp_proxy", "") or "")
            options.lp_idp, options.lp_asyncmessagingent = found
        state.settings = Settings.from_options(options)
        state.rules = gate.rules_for(state.settings)
        _check_rule_names(state.rules)
        if not state.settings.verify_tls:
            log.warning(
                "TLS verification is OFF (--lp-insecure): certificates of LP_IDP and LP_ASYNCMESSAGINGENT are not "
                "checked, so anyone on the path can read the tokens; use it only for a test target you own"
            )
        if options.headless or options.autostart:
            state.preflight = preflight(state.settings, authorize=state.emulator is None)
    except SettingsError as exc:
        _fail(environment, str(exc))


def _check_load_shape(options: object) -> None:
    users = getattr(options, "num_users", None)
    if users is not None and users < 0:
        raise SettingsError(f"-u/--users must be 0 or more users, not {users}")
    rate = getattr(options, "spawn_rate", None)
    if rate is not None and rate <= 0:
        raise SettingsError(f"-r/--spawn-rate must be more than 0 users per second, not {rate}")


def _check_rule_names(rules: list[Rule]) -> None:
    """A rule naming a step or phase that does not exist is a typo: a configuration error, not a broken gate."""
    phases = sorted({p for p in STEP_PHASES.values() if p != Phase.SESSION})
    for rule in rules:
        if rule.scope == "step" and rule.target not in (None, "*", *STEP_PHASES):
            raise SettingsError(
                f"threshold {rule.name!r} names step {rule.target!r}, which does not exist "
                f"(steps: {', '.join(STEP_PHASES)}): fix --lp-thresholds/--lp-threshold"
            )
        if rule.scope == "phase" and rule.target not in phases:
            raise SettingsError(
                f"threshold {rule.name!r} names phase {rule.target!r}, which does not exist "
                f"(phases: {', '.join(phases)}): fix --lp-thresholds/--lp-threshold"
            )


def _start_embedded_emulator(environment: Environment, state: RunState) -> None:
    options = environment.parsed_options
    try:
        extra = shlex.split(options.lp_emulator_args or "")
    except ValueError as exc:
        raise SettingsError(f"--lp-emulator-args is not a valid command line ({exc}): check its quotes") from None
    emulator = EmulatorProcess(extra, new_session=True)  # a terminal's Ctrl-C is for locust, which stops it last
    try:
        emulator.start()
    except Exception as exc:  # the launcher says why (port, bad --lp-emulator-args...)
        raise SettingsError(f"the embedded emulator did not start: {exc} (check --lp-emulator-args)") from None
    state.emulator = emulator
    options.lp_idp = options.lp_asyncmessagingent = options.lp_embedded_url = emulator.url
    options.lp_account = options.lp_account or EMULATOR_ACCOUNT
    log.info(
        "no LP_IDP/LP_ASYNCMESSAGINGENT set: using the embedded emulator at %s (pid %s)", emulator.url, emulator.pid
    )


def _fail(environment: Environment, message: str) -> None:
    """One clear line, no traceback, exit code 2; the embedded emulator (if any) is stopped first."""
    stop_emulator(environment)
    sys.stderr.write(f"lp-harness: configuration error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_CONFIG_ERROR)


def stop_emulator(environment: Environment) -> None:
    state = state_of(environment)
    if state.emulator is not None:
        emulator, state.emulator = state.emulator, None
        emulator.stop()
