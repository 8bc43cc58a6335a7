"""Shared fixtures: the real emulator on an ephemeral loopback port.

Locust monkey-patches the standard library with gevent when it is first imported; a test
module that imports it after ``ssl`` was imported (by requests, urllib3, pyjwt, ...) in the same
pytest process fails with gevent's RecursionError. So patch first, before any test module is
collected. The emulator itself always runs as its own process (asyncio, never patched).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from harness.emulator.launcher import EmulatorProcess  # noqa: E402


@pytest.fixture
def emulator() -> Iterator[Callable[..., EmulatorProcess]]:
    """A factory: ``emu = emulator("--lp-token-lifetime", "60")`` -> a started EmulatorProcess.

    Every emulator it starts is stopped (SIGTERM by PID, then SIGKILL) at teardown.
    Keyword arguments go to :class:`EmulatorProcess` (e.g. ``stderr=subprocess.PIPE``).
    """
    started: list[EmulatorProcess] = []

    def start(*args: str, **kwargs: object) -> EmulatorProcess:
        emu = EmulatorProcess([str(a) for a in args], **kwargs)  # type: ignore[arg-type]
        started.append(emu)
        return emu.start()

    yield start
    for emu in reversed(started):
        emu.stop()


# Property tests explore the same examples on every run: CI stays deterministic.
hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis_settings.load_profile("deterministic")
