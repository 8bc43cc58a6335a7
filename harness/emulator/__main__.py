"""``python -m harness.emulator``: the same as ``lp-harness emulator``."""

import sys

from harness.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
