"""The ``lp-harness`` command: one entry point with a subcommand per tool.

    lp-harness emulator [options]        the embedded LivePerson emulator (IDP, CSDS, messaging socket)
    lp-harness run [locust options]      the load test (locust -f <lp-harness locustfile>); --help: with the --lp-* options
    lp-harness compare BASE CANDIDATE    compare two runs (terminal, Markdown, HTML)
    lp-harness trend RUN...              one HTML page of metrics across runs
    lp-harness thresholds check RUN      evaluate thresholds against a finished run (JUnit XML)
    lp-harness baseline promote RUN --to DIR
    lp-harness report RUN                our HTML page for one run, from its summary.json
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().parent / "user" / "locustfile.py"


def _run(argv: list[str]) -> int:
    """``locust -f <packaged locustfile> ...``: the harness's user classes with Locust's own CLI."""
    # Imported here, not at the top: importing locust patches the process with gevent, which the
    # asyncio emulator (``lp-harness emulator``) must never be.
    from locust.main import main as locust_main

    if any(arg in ("-h", "--help") for arg in argv):
        # Locust prints its help before it loads a locustfile, so without the --lp-* options; here they are.
        from locust.argument_parser import get_parser

        from harness.options import add_arguments

        parser = get_parser()
        add_arguments(parser)
        for action in parser._actions:  # our help is plain text ("fail_ratio<2%"); argparse formats it with %
            if action.dest.startswith("lp_") and action.help:
                action.help = action.help.replace("%", "%%")
        parser.print_help()
        return 0
    sys.argv = ["locust", "-f", str(LOCUSTFILE), *argv]
    locust_main()
    return 0


def _commands() -> dict[str, Callable[[list[str]], int]]:
    """The subcommands, imported on call so that importing this module stays free (neither wing imports locust)."""
    from harness.emulator.cli import main as emulator
    from harness.reports import cli as reports

    return {
        "emulator": emulator,
        "run": _run,
        "compare": reports.main_compare,
        "trend": reports.main_trend,
        "thresholds": reports.main_thresholds,
        "baseline": reports.main_baseline,
        "report": reports.main_report,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not args or args[0] in ("-h", "--help") or args[0] not in commands:
        sys.stdout.write(__doc__ or "")
        return 0 if args and args[0] in ("-h", "--help") else 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return commands[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
