"""``lp-harness emulator``: options, config file, and running the server until SIGTERM/SIGINT.

The first line on standard output is the base URL alone (``http://127.0.0.1:43121``); every
log line goes to standard error, so a launcher can read the URL and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from typing import Any

from harness.emulator.config import EmulatorConfig, load_config_file
from harness.emulator.faults import FAULT_HELP, LATENCY_HELP, ConfigError, parse_cli

log = logging.getLogger("lp-emulator")

DESCRIPTION = """\
The embedded LivePerson emulator: IDP (anonymous/authorize, authenticate, signup), CSDS
discovery, the consumer messaging WebSocket, latency and fault injection, and a ledger of
everything it saw, behind an admin API on the same port (/admin/ledger, /admin/ledger/reset,
/admin/faults, /admin/health). Prints its base URL on the first line of standard output.
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

"""
    + LATENCY_HELP
    + "\n"
    + FAULT_HELP
    + """
config file (--config, JSON if it ends in .json, else TOML): any long option above by name
(idle-timeout = 60), plus "seed", "latency" {target: spec} and "faults" {target: [spec...]};
a spec is the text form above or a table ({kind = "status", status = 503, p = 0.1}).
Command-line flags win over the file; --latency/--fault are added to the file's entries.
The same latency/faults JSON can be read and replaced while running: GET/PUT /admin/faults.
"""
)

_OPTION_KEYS = {
    "host",
    "port",
    "account",
    "key_bits",
    "anon_token_lifetime",
    "anon_refresh_window",
    "lp_token_lifetime",
    "idle_timeout",
    "init_timeout",
    "auth_failure",
    "trust_key",
    "no_tutorial_key",
    "tls",
    "tls_dir",
    "processes",
    "backlog",
    "log_level",
    "seed",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lp-harness emulator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    net.add_argument("--tls", action="store_true", help="serve https/wss with a self-signed certificate made at start")
    net.add_argument("--tls-dir", metavar="DIR", help="where --tls writes cert.pem/key.pem (default: a new temp dir)")
    net.add_argument("--backlog", type=int, default=4096, help="listen backlog (default 4096)")
    net.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="N worker processes on one port (SO_REUSEPORT); the admin API sums their ledgers (default 1)",
    )
    idp = p.add_argument_group("identity")
    idp.add_argument("--account", help="serve only this account id (default: accept any account)")
    idp.add_argument(
        "--key-bits",
        type=int,
        default=1024,
        help="RSA size of the emulator's signing keys (default 1024: LivePerson's example token has a 128-byte signature)",
    )
    idp.add_argument(
        "--anon-token-lifetime",
        type=float,
        default=600.0,
        metavar="S",
        help="lifetime of anonymous identity tokens in s (default 600, the docs' 10 minutes)",
    )
    idp.add_argument(
        "--anon-refresh-window",
        type=float,
        default=730 * 3600.0,
        metavar="S",
        help="how long after expiry an anonymous token can still be extended, in s (default 2628000 = 730 h)",
    )
    idp.add_argument(
        "--lp-token-lifetime",
        type=float,
        default=3600.0,
        metavar="S",
        help="lifetime of LP tokens in s (default 3600); a socket is closed when its token expires "
        "(4407 for anonymous identities, 4401 for external ones)",
    )
    idp.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="PEMFILE",
        help="also trust external JWTs signed by this RSA public key (repeatable)",
    )
    idp.add_argument(
        "--no-tutorial-key",
        action="store_true",
        help="do not trust the tutorial's 'Further Testing' public key (trusted by default)",
    )
    sock = p.add_argument_group("messaging socket")
    sock.add_argument(
        "--idle-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="close a socket with 1008 after S seconds with no frame or ping from the client (default 120)",
    )
    sock.add_argument(
        "--init-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="a socket opened without an Authorization header must send InitConnection within S s (default 5)",
    )
    sock.add_argument(
        "--auth-failure",
        choices=("http", "close"),
        default="http",
        help="bad token at the handshake: refuse the upgrade with HTTP 401/403 (http, default) "
        "or accept and close with 4401/4407 (close)",
    )
    inj = p.add_argument_group("latency and faults (syntax below)")
    inj.add_argument("--config", metavar="FILE", help="JSON or TOML file with options, latency and faults")
    inj.add_argument(
        "--latency", action="append", default=[], metavar="TARGET=SPEC", help="inject latency (repeatable)"
    )
    inj.add_argument(
        "--fault", action="append", default=[], metavar="TARGET=KIND[...]", help="inject a fault (repeatable)"
    )
    inj.add_argument("--seed", type=int, help="seed the fault/latency draws so counts are reproducible")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="(default INFO)")
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
        defaults: dict[str, Any] = {}
        for key, value in file_cfg.items():
            dest = key.replace("-", "_")
            if dest in ("latency", "faults"):
                continue
            if dest == "trust_keys":
                dest = "trust_key"
            if dest not in _OPTION_KEYS:
                raise ConfigError(f"{known.config}: unknown key {key!r}")
            if dest == "trust_key" and isinstance(value, str):
                value = [value]
            defaults[dest] = value
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    plan = parse_cli(args.latency, args.fault, args.seed, {k: file_cfg.get(k) for k in ("latency", "faults", "seed")})
    config = EmulatorConfig(
        host=args.host,
        port=int(args.port),
        account=args.account,
        key_bits=int(args.key_bits),
        anon_token_lifetime=float(args.anon_token_lifetime),
        anon_refresh_window=float(args.anon_refresh_window),
        lp_token_lifetime=float(args.lp_token_lifetime),
        idle_timeout=float(args.idle_timeout),
        init_timeout=float(args.init_timeout),
        auth_failure=args.auth_failure,
        trust_keys=list(args.trust_key),
        trust_tutorial_key=not args.no_tutorial_key,
        tls=bool(args.tls),
        tls_dir=args.tls_dir,
        processes=int(args.processes),
        backlog=int(args.backlog),
        log_level=str(args.log_level).upper(),
        plan=plan,
    )
    config.validate()
    return config


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (every held socket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard


def listen_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int, tls: bool) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def run_loop(coro: Any) -> Any:
    """Run ``coro`` on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    uvloop.install()  # Python 3.10
    return asyncio.run(coro)


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
    soft, hard = raise_nofile_limit()
    log.info("open-file limit: soft=%d hard=%d", soft, hard)
    if config.processes > 1:
        from harness.emulator.workers import run_workers

        return run_workers(config)
    from harness.emulator.runner import serve

    try:
        return run_loop(serve(config))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"lp-harness emulator: error: {exc}", file=sys.stderr)
        return 1


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


LIFELINE_ENV = "LP_EMULATOR_LIFELINE"


def lifeline_fd() -> int | None:
    """Standard input, when the process that started us holds its other end (EmulatorProcess does).

    Its end of file means that process is gone -- even by SIGKILL -- and an embedded emulator must
    not outlive the load test that started it.
    """
    return sys.stdin.fileno() if os.environ.get(LIFELINE_ENV) == "1" and sys.stdin is not None else None


def watch_lifeline(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    fd = lifeline_fd()
    if fd is None:
        return

    def readable() -> None:
        if not os.read(fd, 4096):
            log.warning("the process that started this emulator is gone: stopping")
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)
