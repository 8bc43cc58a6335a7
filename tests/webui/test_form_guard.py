"""The start form cannot change settings that name files or start processes (a real browser, a real locust).

Without ``--lp-ui-allow-paths`` the fields are not in the form, and a start request that carries
them anyway (the form is only a POST) is undone before the run starts: the run writes its reports
where the harness was started to write them, and says what it undid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.webui.test_browser import _browser, _get_json, _locust, _poll

PROTECTED_FIELDS = ("lpReportsDir", "lpExternalKey", "lpThresholds", "lpEmulatorArgs")


def _custom_fields(page, url: str) -> set[str]:
    page.goto(url + "/")
    page.get_by_text("Custom parameters").click()
    page.wait_for_selector("input[name=lpHold]")
    return set(page.eval_on_selector_all("input[name], textarea[name]", "els => els.map(e => e.name)"))


@pytest.mark.timeout(120)
def test_the_form_cannot_move_the_reports_or_start_the_emulator_differently(emulator, tmp_path: Path) -> None:
    emu = emulator()
    elsewhere = tmp_path / "elsewhere"
    with _locust(emu.url, tmp_path, []) as (_proc, url, log_path), _browser() as page:
        fields = _custom_fields(page, url)
        assert "lpHold" in fields and not fields & set(PROTECTED_FIELDS), fields
        form = {
            "user_count": "1",
            "spawn_rate": "1",
            "run_time": "2s",
            "lp_hold": "0.5",
            "lp_reports_dir": str(elsewhere),
            "lp_emulator_args": "--fault connect=status:500",
        }
        answer = page.request.post(url + "/swarm", form=form)
        assert answer.ok and answer.json()["success"], answer.text()
        _poll(lambda: _get_json(url + "/stats/requests")["state"] == "stopped", 30, "the run to stop")
        _poll(lambda: (tmp_path / "reports").is_dir() and any((tmp_path / "reports").iterdir()), 15, "reports")
        log = log_path.read_text()
    assert not elsewhere.exists()
    assert "the web UI tried to change --lp-reports-dir, --lp-emulator-args" in log, log[-3000:]
    assert emu.ledger()["endpoints"]["connect"]["ok"] > 0  # the emulator kept the options it started with


@pytest.mark.timeout(60)
def test_the_flag_puts_the_fields_back(emulator, tmp_path: Path) -> None:
    emu = emulator()
    with _locust(emu.url, tmp_path, ["--lp-ui-allow-paths"]) as (_proc, url, _log), _browser() as page:
        assert set(PROTECTED_FIELDS) <= _custom_fields(page, url)
