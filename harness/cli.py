"""The ``lp-harness`` command: one entry point with a subcommand per tool."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lp-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("emulator", help="run the embedded LivePerson emulator", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "emulator":
        from harness.emulator.cli import main as emulator_main

        return emulator_main(rest)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
