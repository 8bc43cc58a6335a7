"""``python -m harness.reports compare|trend|baseline|thresholds|report ...``."""

import sys

from harness.reports.cli import main

sys.exit(main())
