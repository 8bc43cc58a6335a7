"""What several test folders need: Locust's parser with the harness's options, and system binaries the tests start."""

from __future__ import annotations

import os
import shutil
from argparse import Namespace

import pytest
from locust import argument_parser

from harness.options import add_arguments


def parse_options(
    args: list[str], monkeypatch: pytest.MonkeyPatch | None = None, env: dict[str, str] | None = None
) -> Namespace:
    """Locust's own parser with the harness's options: command line, then environment."""
    for key, value in (env or {}).items():
        assert monkeypatch is not None
        monkeypatch.setenv(key, value)
    parser = argument_parser.get_parser()
    add_arguments(parser)
    return parser.parse_args(args)


def system_binary(name: str) -> str:
    """A Debian package's binary the tests start (``.ci/run`` installs it); skip without it, fail in CI."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        message = f"Debian's {name} is not installed (apt-get install {name}; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
