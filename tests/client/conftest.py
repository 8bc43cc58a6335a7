"""The ``session`` fixture; ``emulator`` (a real emulator process on loopback) is tests/conftest.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.client.support import lp_token, ws_url


@pytest.fixture
def session(emulator: Callable[..., Any]) -> Callable[..., tuple[Any, str, str]]:
    """``session(*emulator_args)`` -> (emulator, socket url, LP token) on a fresh emulator."""

    def make(*args: str) -> tuple[Any, str, str]:
        emu = emulator(*args)
        return emu, ws_url(emu.url), lp_token(emu.url)

    return make
