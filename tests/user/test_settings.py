"""Settings come from Locust's own parser (CLI, env, config file) and fail with a message naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.protocol import tokens
from harness.settings import Settings, SettingsError, wants_embedded_emulator
from tests.tools import parse_options

parse = parse_options


def test_tutorial_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    options = parse(
        [],
        monkeypatch,
        {
            "LP_ACCOUNT": "qa57221676",
            "LP_IDP": "va.idp.liveperson.net",
            "LP_ASYNCMESSAGINGENT": "va.msg.liveperson.net",
        },
    )
    settings = Settings.from_options(options)
    assert settings.idp == "https://va.idp.liveperson.net"
    assert settings.socket_url == "wss://va.msg.liveperson.net/ws_api/account/qa57221676/messaging/consumer?v=3"
    assert not wants_embedded_emulator(options)


def test_config_file_and_command_line(tmp_path: Path) -> None:
    conf = tmp_path / "lp.conf"
    conf.write_text(
        "lp-account = 42\nlp-idp = http://127.0.0.1:9000\nlp-asyncmessagingent = http://127.0.0.1:9001\nlp-hold = 5\n"
    )
    settings = Settings.from_options(parse(["--config", str(conf), "--lp-ping-interval", "2.5"]))
    assert (settings.account, settings.hold_s, settings.ping_interval_s) == ("42", 5.0, 2.5)
    assert settings.messaging == "http://127.0.0.1:9001"


def test_no_host_means_embedded_emulator() -> None:
    assert wants_embedded_emulator(parse([]))


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--lp-idp", "http://127.0.0.1:1", "--lp-asyncmessagingent", "http://127.0.0.1:1"], "LP_ACCOUNT"),
        (["--lp-account", "1", "--lp-idp", "http://127.0.0.1:1"], "LP_ASYNCMESSAGINGENT"),
        (["--lp-account", "1", "--lp-idp", "ftp://x", "--lp-asyncmessagingent", "h"], "LP_IDP"),
        (["--lp-account", "1", "--lp-idp", "h", "--lp-asyncmessagingent", "http://h:port"], "LP_ASYNCMESSAGINGENT"),
        (["--lp-account", "1", "--lp-idp", "h", "--lp-asyncmessagingent", "h", "--lp-hold", "soon"], "--lp-hold"),
        (
            ["--lp-account", "1", "--lp-idp", "h", "--lp-asyncmessagingent", "h", "--lp-ping-interval", "0"],
            "--lp-ping-interval",
        ),
    ],
)
def test_bad_settings_name_the_setting(args: list[str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_options(parse(args))
    assert named in str(info.value)


def test_public_settings_hold_no_key_material(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text(tokens.TUTORIAL_PRIVATE_KEY_PEM)  # a real key: the settings check that it is one
    settings = Settings.from_options(
        parse(
            [
                "--lp-account",
                "1",
                "--lp-idp",
                "h",
                "--lp-asyncmessagingent",
                "h",
                "--lp-identity",
                "external",
                "--lp-external-key",
                str(key),
            ]
        )
    )
    assert "PRIVATE KEY" not in repr(settings.public())


def test_run_help_lists_the_harness_options_beside_locusts() -> None:
    """Locust prints --help before it loads a locustfile; ``lp-harness run --help`` has ours too."""
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for flag in ("--users", "--lp-account", "--lp-threshold", "--lp-on-drop"):
        assert flag in out.stdout, flag
