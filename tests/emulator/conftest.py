"""Fixtures for the emulator tests: a shared emulator per module (helpers live in helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.emulator.launcher import EmulatorProcess


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[EmulatorProcess]:
    """One default emulator for a whole module (tests reset its ledger/faults as they need)."""
    with EmulatorProcess(["--seed", "1"]) as emu:
        yield emu


@pytest.fixture
def emu(shared_emu: EmulatorProcess) -> EmulatorProcess:
    """The module's emulator with no faults and a zeroed ledger."""
    shared_emu.set_faults({})
    shared_emu.reset_ledger()
    return shared_emu
