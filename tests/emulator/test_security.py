"""The emulator's own safety: an admin token when asked for, a loud warning beyond loopback, no key left behind."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.emulator.cli import build_config, warn_if_exposed
from harness.emulator.launcher import EmulatorError, EmulatorProcess
from harness.emulator.process import is_loopback

TOKEN = "t0ken-for-tests"


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("processes", ["1", "2"])
def test_admin_token_guards_every_admin_route(processes: str, server_path: dict[str, str]) -> None:
    with EmulatorProcess(["--processes", processes], env=server_path, admin_token=TOKEN) as emu:
        for path in ("/admin/ledger", "/admin/faults", "/admin/health", "/admin/config"):
            assert _status(emu.url + path) == 401, path
            assert _status(emu.url + path, {"Authorization": "Bearer wrong"}) == 401, path
            assert _status(emu.url + path, {"Authorization": f"Bearer {TOKEN}"}) == 200, path
        emu.set_faults({"faults": {"csds": ["status:404"]}})  # passed on to every worker with the token
        emu.reset_ledger()
        assert emu.ledger()["sockets"]["open"] == 0  # summed across workers with the token
        assert emu.config()["admin-token"] == "<set>"  # never the token itself
        assert TOKEN not in " ".join(emu.command)  # passed in the environment, not on the command line


def test_admin_api_stays_open_without_a_token(emu) -> None:
    assert _status(emu.url + "/admin/health") == 200
    assert emu.config()["admin-token"] is None


def test_a_wrong_token_is_a_clear_error(server_path: dict[str, str]) -> None:
    env = {**server_path, "LP_EMULATOR_ADMIN_TOKEN": TOKEN}  # the emulator has a token; this caller does not
    with EmulatorProcess([], env=env) as emu, pytest.raises(EmulatorError, match="401.*admin-token"):
        emu.ledger()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.1.7", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("", False),
     ("::", False), ("10.1.2.3", False), ("example.org", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listening_beyond_loopback_is_said_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lp-emulator"):
        warn_if_exposed(build_config(["--host", "127.0.0.1"]))
        assert not caplog.records
        warn_if_exposed(build_config(["--host", "0.0.0.0"]))
        warn_if_exposed(build_config(["--host", "0.0.0.0", "--admin-token", "x"]))
    open_api, guarded = (r.getMessage() for r in caplog.records)
    assert "beyond loopback" in open_api and "--admin-token" in open_api
    assert "beyond loopback" in guarded and "admin API" not in guarded


@pytest.mark.parametrize("processes", ["1", "2"])
def test_tls_leaves_no_key_behind(emulator, processes: str) -> None:
    emu = emulator("--tls", "--processes", processes)
    cert = Path(emu.health()["tls_cert"])
    assert cert.is_file() and cert.parent.name.startswith("lp-emulator-tls-")
    assert not (cert.parent / "key.pem").exists()  # loaded, then deleted: nothing to read even after a kill
    assert emu.stop() == 0
    assert not cert.parent.exists()


def test_a_chosen_tls_dir_keeps_its_files(emulator, tmp_path: Path) -> None:
    emu = emulator("--tls", "--tls-dir", str(tmp_path))
    emu.stop()
    assert (tmp_path / "cert.pem").is_file() and (tmp_path / "key.pem").is_file()
