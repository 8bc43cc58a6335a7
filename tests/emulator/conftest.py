"""Fixtures for the emulator tests: a shared emulator per module (helpers live in helpers.py).

Every emulator test runs twice: through the fast lane (the default: the hot IDP calls and the
socket upgrade served ahead of aiohttp) and through plain aiohttp (``LP_EMULATOR_FASTLANE=0``),
so both paths give the same answers, errors, faults and ledger.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from harness.emulator.launcher import EmulatorProcess


@pytest.fixture(scope="module", params=["fastlane", "aiohttp"])
def server_path(request: pytest.FixtureRequest) -> dict[str, str]:
    return {**os.environ, "LP_EMULATOR_FASTLANE": "1" if request.param == "fastlane" else "0"}


@pytest.fixture(scope="module")
def shared_emu(server_path: dict[str, str]) -> Iterator[EmulatorProcess]:
    """One default emulator for a whole module (tests reset its ledger/faults as they need)."""
    with EmulatorProcess(["--seed", "1"], env=server_path) as emu:
        yield emu


@pytest.fixture
def emu(shared_emu: EmulatorProcess) -> EmulatorProcess:
    """The module's emulator with no faults and a zeroed ledger."""
    shared_emu.set_faults({})
    shared_emu.reset_ledger()
    return shared_emu


@pytest.fixture
def emulator(
    emulator: Callable[..., EmulatorProcess], server_path: dict[str, str]
) -> Callable[..., EmulatorProcess]:
    """The top-level factory, on this module's server path."""

    def start(*args: str, **kwargs: object) -> EmulatorProcess:
        kwargs.setdefault("env", server_path)
        return emulator(*args, **kwargs)

    return start
