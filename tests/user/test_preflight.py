"""Bad settings are one line and exit code 2, before any load: preflight, checked inputs, the TLS warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.protocol import tokens
from tests.user.runs import run_locust

SHORT = ["-u", "2", "-r", "10", "-t", "3s", "--lp-hold", "0.5", "--lp-ping-interval", "0.2"]


def _config_error(run, named: str) -> None:
    assert run.returncode == 2, run.output[-3000:]
    assert "configuration error" in run.output and named in run.output, run.output[-3000:]
    assert "Traceback" not in run.output


def test_a_wrong_account_is_one_line_and_one_request(emulator, tmp_path: Path) -> None:
    emu = emulator("--account", "acme")
    run = run_locust(SHORT, tmp_path, target=emu.url, env={"LP_ACCOUNT": "acmee"})
    _config_error(run, "LP_ACCOUNT 'acmee'")
    assert "HTTP 404" in run.output
    ledger = emu.ledger()
    assert ledger["endpoints"]["anonymous-authorize"]["received"] == 1  # the preflight's, and no storm
    assert "connect" not in ledger["endpoints"]


def test_a_failing_idp_is_the_targets_state_not_a_setting(emulator, tmp_path: Path) -> None:
    emu = emulator("--fault", "anonymous-authorize=status:503")
    run = run_locust(SHORT, tmp_path, target=emu.url)
    assert run.returncode == 1, run.output[-3000:]  # failures, not a configuration error
    assert "answered HTTP 503 to one anonymous authorize" in run.output and "Traceback" not in run.output
    summary = run.summary
    assert summary["run"]["preflight"] == {"anonymous-authorize": {"sent": 1, "ok": 0}}
    sent = summary["steps"]["anonymous-authorize"]["count"] + 1
    assert emu.ledger()["endpoints"]["anonymous-authorize"]["received"] == sent


def test_an_untrusted_certificate_is_one_line_and_insecure_says_so(emulator, tmp_path: Path) -> None:
    emu = emulator("--tls")
    strict = run_locust(SHORT, tmp_path / "strict", target=emu.url)
    _config_error(strict, "not trusted")
    assert "--lp-insecure" in strict.output
    insecure = run_locust([*SHORT, "--lp-insecure"], tmp_path / "insecure", target=emu.url)
    assert insecure.returncode == 0, insecure.output[-3000:]
    assert "TLS verification is OFF" in insecure.output
    assert insecure.summary["steps"]["close-conversation"]["count"] > 0
    assert insecure.summary["run"]["settings"]["socket_url"].startswith("wss://")
    assert insecure.summary["run"]["preflight"] == {"anonymous-authorize": {"sent": 1, "ok": 1}}


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["-u", "-5"], {}, "-u/--users"),
        (["--lp-threshold", "authenticat:p95<100"], {}, "names step 'authenticat'"),
        (["--lp-threshold", "phase:sockets:fail_ratio<1%"], {}, "names phase 'sockets'"),
        (["--lp-emulator-args", "--latency 'authenticate=5"], {}, "--lp-emulator-args"),
        ([], {"LP_ACCOUNT": "acme corp/1\r\n"}, "not an account id"),
    ],
)
def test_bad_inputs_are_configuration_errors(tmp_path: Path, args: list[str], env: dict[str, str], named: str) -> None:
    _config_error(run_locust([*SHORT, *args], tmp_path, env=env, timeout=60), named)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("", "is empty"),
        ("not a key at all\n", "not an RSA private key"),
        (tokens.TUTORIAL_PUBLIC_KEY_PEM, "is a public key"),
    ],
)
def test_a_bad_external_key_file_is_one_line(tmp_path: Path, content: str, named: str) -> None:
    key = tmp_path / "brand.pem"
    key.write_text(content)
    args = [*SHORT, "--lp-identity", "external", "--lp-external-key", str(key)]
    _config_error(run_locust(args, tmp_path / "reports", timeout=60), named)
