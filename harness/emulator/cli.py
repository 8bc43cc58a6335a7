"""``lp-harness emulator``: options, config file, and running the server until SIGTERM/SIGINT.

The first line on standard output is the base URL alone (``http://127.0.0.1:43121``); every
log line goes to standard error, so a launcher can read the URL and nothing else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from harness.emulator import options
from harness.emulator.config import EmulatorConfig, load_config_file
from harness.emulator.faults import FAULT_HELP, LATENCY_HELP, PLAN_KEYS, ConfigError, parse_cli
from harness.emulator.process import ADMIN_TOKEN_ENV, is_loopback, raise_nofile_limit, run_loop
from harness.emulator.runner import serve
from harness.emulator.workers import run_workers

log = logging.getLogger("lp-emulator")

DESCRIPTION = """\
The embedded LivePerson emulator: IDP (anonymous/authorize, authenticate, signup), CSDS
discovery, the consumer messaging WebSocket, latency and fault injection, and a ledger of
everything it saw, behind an admin API on the same port (/admin/ledger, /admin/ledger/reset,
/admin/faults, /admin/agents, /admin/health, /admin/config). Optionally agents that answer the
consumers' messages (--agents). Prints its base URL on the first line of standard output.
Behaviour, defaults and every choice where LivePerson's docs are silent: docs/emulator.md.
"""

EPILOG = (
    """\
examples:
  lp-harness emulator                                   # http://127.0.0.1:<free port>
  lp-harness emulator --port 8080 --account qa57221676 --idle-timeout 60
  lp-harness emulator --tls                             # https:// and wss:// with a self-signed cert
  lp-harness emulator --lp-token-lifetime 30            # sockets closed with 4407 after 30 s
  lp-harness emulator --trust-key brand_public.pem      # accept external JWTs signed by that key
  lp-harness emulator --config faults.toml --seed 7     # latency + faults from a file, reproducible
  lp-harness emulator --latency 'authenticate=20+lognormal:10:0.5' --fault 'authenticate=status:503,p=0.05'
  lp-harness emulator --processes 2 --port 8080         # two SO_REUSEPORT workers, one summed ledger
  lp-harness emulator --agents 50 --agent-reply-delay '500+uniform:1000' --agent-typing
                                                        # 50 agents answer each message in 0.5-1.5 s
  lp-harness emulator --agents 5 --agent-skill sales=2 --agent-conversations 3
                                                        # 5 default agents, 2 for skillId "sales", 3 chats each
  lp-harness emulator --rate-limit 200                  # over 200 requests/s per account: 429 + Retry-After

"""
    + LATENCY_HELP
    + "\n"
    + FAULT_HELP
    + """
config file (--config, JSON if it ends in .json, else TOML): any long option above by name
(idle-timeout = 60), plus "seed", "latency" {target: spec} and "faults" {target: [spec...]};
a spec is the text form above or a table ({kind = "status", status = 503, p = 0.1}).
Command-line flags win over the file; --latency/--fault are added to the file's entries.
The same latency/faults JSON can be read and replaced while running: GET/PUT /admin/faults;
the agents likewise, under their option names: GET/PUT /admin/agents ({"agents": 10,
"agent-reply-delay": "200+uniform:100"}; absent keys take their defaults, {} = no agents).
GET /admin/config shows the options in effect, under their config-file names.
"""
)

INJECTION = "latency and faults (syntax below)"


def build_parser() -> argparse.ArgumentParser:
    """The options declared on :class:`EmulatorConfig`, then the fault plan's own flags."""
    p = argparse.ArgumentParser(
        prog="lp-harness emulator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_arguments(p, EmulatorConfig)
    inj = p.add_argument_group(INJECTION)
    inj.add_argument("--config", metavar="FILE", help="JSON or TOML file with options, latency and faults")
    inj.add_argument(
        "--latency", action="append", default=[], metavar="TARGET=SPEC", help="inject latency (repeatable)"
    )
    inj.add_argument(
        "--fault", action="append", default=[], metavar="TARGET=KIND[...]", help="inject a fault (repeatable)"
    )
    inj.add_argument("--seed", type=int, help="seed the fault/latency draws so counts are reproducible")
    return p


def build_config(argv: list[str]) -> EmulatorConfig:
    """Options from a config file (if any) overridden by the command line; ConfigError if invalid."""
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    file_cfg: dict[str, Any] = {}
    if known.config:
        file_cfg = load_config_file(known.config)
        parser.set_defaults(**options.file_defaults(EmulatorConfig, file_cfg, known.config, skip=PLAN_KEYS))
    args = parser.parse_args(argv)
    plan = parse_cli(args.latency, args.fault, args.seed, {k: file_cfg.get(k) for k in PLAN_KEYS})
    config: EmulatorConfig = options.from_args(EmulatorConfig, args, plan=plan)
    if config.admin_token is None:
        config.admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
    config.validate()
    return config


def warn_if_exposed(config: EmulatorConfig) -> None:
    """Say so loudly when the emulator can be reached from beyond this machine."""
    if is_loopback(config.host):
        return
    log.warning(
        "listening on %s, beyond loopback: anyone who can reach this machine can use the emulator%s",
        config.host,
        "" if config.admin_token else " and change its faults through the admin API (set --admin-token or "
        f"${ADMIN_TOKEN_ENV})",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = build_config(argv)
    except ConfigError as exc:
        print(f"lp-harness emulator: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
    )
    warn_if_exposed(config)
    soft, hard = raise_nofile_limit()
    log.info("open-file limit: soft=%d hard=%d", soft, hard)
    if config.processes > 1:
        return run_workers(config)
    try:
        return run_loop(serve(config))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"lp-harness emulator: error: {exc}", file=sys.stderr)
        return 1
