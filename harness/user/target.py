"""Which target a run loads, decided once on the master (or the only process) before any user starts.

No host given: the harness starts its own emulator. ``--lp-discovery``: the hosts come from
CSDS. Either way the settings and the threshold rules are validated here, so a bad setting ends
the run with one line naming it (exit code 2) instead of thousands of identical failures.
"""

from __future__ import annotations

import logging
import sys

from locust.env import Environment

from harness.emulator.launcher import EmulatorProcess
from harness.settings import EMULATOR_ACCOUNT, Settings, SettingsError, wants_embedded_emulator
from harness.user import gate
from harness.user.discovery import check_reachable, discover
from harness.user.state import RunState, state_of

log = logging.getLogger("lp-harness")
EXIT_CONFIG_ERROR = 2


def resolve_target(environment: Environment) -> None:
    """Master/local: fill in the hosts (embedded emulator or CSDS) and validate; exit 2 on a bad setting."""
    options = environment.parsed_options
    state = state_of(environment)
    try:
        if wants_embedded_emulator(options):
            _start_embedded_emulator(environment, state)
        elif (options.lp_discovery or "").strip() and not (options.lp_idp and options.lp_asyncmessagingent):
            options.lp_idp, options.lp_asyncmessagingent = discover(options.lp_discovery, options.lp_account)
        state.settings = Settings.from_options(options)
        state.rules = gate.rules_for(state.settings)
        if options.headless or options.autostart:
            check_reachable(state.settings)
    except SettingsError as exc:
        _fail(environment, str(exc))


def _start_embedded_emulator(environment: Environment, state: RunState) -> None:
    options = environment.parsed_options
    extra = (options.lp_emulator_args or "").split()
    emulator = EmulatorProcess(extra)
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
