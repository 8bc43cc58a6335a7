"""The emulator's options come from one declaration each: command line, config file and /admin/config agree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.emulator import options
from harness.emulator.cli import build_config, build_parser
from harness.emulator.config import EmulatorConfig
from harness.emulator.faults import PLAN_KEYS, ConfigError
from harness.protocol import tokens

INTERNAL = {"tls_cert", "tls_key", "plan"}  # set by the program, never by a user: no option


def _option_keys() -> set[str]:
    return {spec.key for _field, spec in options.options(EmulatorConfig)}


def _samples(tmp_path: Path) -> dict[str, tuple[Any, str, Any]]:
    """config-file key -> (a non-default file value, the field it sets, the field's value then)."""
    pem = tmp_path / "brand.pem"
    pem.write_text(tokens.generate_signing_key(1024).public_pem())
    return {
        "host": ("0.0.0.0", "host", "0.0.0.0"),
        "port": (8081, "port", 8081),
        "tls": (True, "tls", True),
        "tls-dir": (str(tmp_path / "tls"), "tls_dir", str(tmp_path / "tls")),
        "admin-token": ("s3cret", "admin_token", "s3cret"),
        "backlog": (64, "backlog", 64),
        "processes": (2, "processes", 2),
        "account": ("acc1", "account", "acc1"),
        "key-bits": (2048, "key_bits", 2048),
        "anon-token-lifetime": (30, "anon_token_lifetime", 30.0),
        "anon-refresh-window": (60.5, "anon_refresh_window", 60.5),
        "lp-token-lifetime": (77, "lp_token_lifetime", 77.0),
        "token-cache-s": (5, "token_cache_s", 5.0),
        "trust-key": (str(pem), "trust_keys", [str(pem)]),
        "no-tutorial-key": (True, "trust_tutorial_key", False),
        "idle-timeout": (33, "idle_timeout", 33.0),
        "init-timeout": (2.5, "init_timeout", 2.5),
        "auth-failure": ("close", "auth_failure", "close"),
        "log-level": ("debug", "log_level", "DEBUG"),
        "rate-limit": (50, "rate_limit", 50.0),
        "agents": (4, "agents", 4),  # at least one per worker (processes = 2 above)
        "agent-skill": ("sales=2", "agent_skills", ["sales=2"]),
        "agent-conversations": (3, "agent_conversations", 3),
        "agent-reply-delay": ("200+uniform:100", "agent_reply_delay", "200+uniform:100"),
        "agent-reply-probability": (0.5, "agent_reply_probability", 0.5),
        "agent-typing": (True, "agent_typing", True),
    }


def test_every_field_is_an_option_or_internal() -> None:
    declared = {f.name for f, _spec in options.options(EmulatorConfig)}
    assert {f.name for f in dataclasses.fields(EmulatorConfig)} == declared | INTERNAL
    assert not declared & INTERNAL
    specs = [spec for _f, spec in options.options(EmulatorConfig)]
    assert all(s.flag.startswith("--") and s.help for s in specs)
    flags = [s.flag for s in specs]
    assert len(set(flags)) == len(flags)
    assert not set(options.config_keys(EmulatorConfig)) & set(PLAN_KEYS)  # the plan's keys stay the plan's


def test_every_option_is_on_the_command_line_with_its_default() -> None:
    text = build_parser().format_help()
    for _f, spec in options.options(EmulatorConfig):
        assert spec.flag in text
    assert build_config([]) == EmulatorConfig()  # the parser's defaults are the dataclass's


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_config_file_key_for_each_option(tmp_path: Path, suffix: str) -> None:
    samples = _samples(tmp_path)
    assert set(samples) == _option_keys(), "give every option a sample here"
    path = tmp_path / f"emu{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({key: value for key, (value, _, _) in samples.items()}))
    else:
        path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, (value, _, _) in samples.items()))
    config = build_config(["--config", str(path)])
    for key, (_value, name, expected) in samples.items():
        assert getattr(config, name) == expected, key
        assert getattr(config, name) != getattr(EmulatorConfig(), name), f"{key}: pick a non-default sample"


def test_file_keys_take_underscores_and_aliases_and_flags_win(tmp_path: Path) -> None:
    pem = tmp_path / "k.pem"
    pem.write_text(tokens.generate_signing_key(1024).public_pem())
    path = tmp_path / "emu.json"
    path.write_text(json.dumps({"idle_timeout": 33, "trust-keys": [str(pem)], "seed": 5}))
    config = build_config(["--config", str(path), "--idle-timeout", "44"])
    assert config.idle_timeout == 44.0 and config.trust_keys == [str(pem)] and config.plan.seed == 5


@pytest.mark.parametrize(
    "content",
    [
        {"no-such-option": 1},
        {"port": "abc"},
        {"tls": "yes"},
        {"trust-key": 5},
        {"auth-failure": "maybe"},
        {"log-level": "loud"},
        {"host": 7},
    ],
)
def test_bad_file_values_are_config_errors(tmp_path: Path, content: dict[str, Any]) -> None:
    path = tmp_path / "emu.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError):
        build_config(["--config", str(path)])


def test_the_view_is_a_config_file_for_the_same_options(tmp_path: Path) -> None:
    config = build_config(["--idle-timeout", "9", "--no-tutorial-key", "--account", "a1", "--seed", "3"])
    view = options.view(config)
    assert set(view) == _option_keys()
    assert view["no-tutorial-key"] is True and view["idle-timeout"] == 9.0
    path = tmp_path / "again.json"
    path.write_text(json.dumps(view))
    again = build_config(["--config", str(path)])
    assert dataclasses.replace(again, plan=config.plan) == config


def test_admin_config_shows_the_running_options(emulator, tmp_path: Path) -> None:
    pem = tmp_path / "brand.pem"
    pem.write_text(tokens.generate_signing_key(1024).public_pem())
    path = tmp_path / "emu.toml"
    path.write_text('idle-timeout = 33\nlog-level = "warning"\n[faults]\ncsds = ["status:404"]\n')
    emu = emulator("--config", str(path), "--trust-key", str(pem), "--tls", "--auth-failure", "close")
    shown = emu.config()
    assert set(shown) == _option_keys()
    assert shown["idle-timeout"] == 33.0 and shown["log-level"] == "WARNING"
    assert shown["trust-key"] == [str(pem)] and shown["tls"] is True and shown["auth-failure"] == "close"
    assert shown["host"] == "127.0.0.1" and shown["port"] == 0  # as asked: /admin/health has the bound URL
    cert = emu.health()["tls_cert"]
    text = json.dumps(shown)
    assert "PRIVATE" not in text and "key.pem" not in text and cert not in text
    r = requests.put(emu.url + "/admin/config", data=b"{}", timeout=5, verify=cert)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
