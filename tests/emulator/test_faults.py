"""Latency and fault injection, set at start (flags, config files) and while running (admin API)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import requests
import websocket

from harness.emulator.launcher import EmulatorError
from harness.protocol import paths
from tests.emulator.helpers import ACCOUNT, Client, lp_token, ws_url

AUTHZ = paths.anonymous_authorize_path(ACCOUNT)


def _authz(url: str, timeout: float = 5.0) -> requests.Response:
    return requests.post(url + AUTHZ, timeout=timeout)


# ---------------------------------------------------------------------- HTTP faults
def test_http_status_faults_with_retry_after(emu) -> None:
    emu.set_faults(
        {
            "faults": {
                "anonymous-authorize": "status:429",
                "authenticate": [{"kind": "status", "status": 503, "retry_after": 7}],
            }
        }
    )
    r = _authz(emu.url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["error"] == "injected_fault"
    r = requests.post(emu.url + paths.authenticate_path(ACCOUNT), json={"authCode": "x"}, timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    ledger = emu.ledger()["endpoints"]
    assert ledger["anonymous-authorize"]["faults"] == {"status": 1}
    assert ledger["anonymous-authorize"]["errors"] == {"429": 1}
    assert ledger["authenticate"]["errors"] == {"503": 1}


def test_http_malformed_and_truncated(emu) -> None:
    emu.set_faults({"faults": {"anonymous-authorize": "malformed", "csds": "truncated"}})
    r = _authz(emu.url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    r = requests.get(emu.url + paths.csds_path(ACCOUNT, "idp"), timeout=5)
    assert r.status_code == 200 and r.text.startswith('{"service"')
    with pytest.raises(ValueError):
        r.json()
    ledger = emu.ledger()["endpoints"]
    assert ledger["anonymous-authorize"]["faults"] == {"malformed": 1}
    assert ledger["csds"]["faults"] == {"truncated": 1} and ledger["csds"]["ok"] == 0


def test_http_hang_and_reset(emu) -> None:
    emu.set_faults({"faults": {"anonymous-authorize": "hang:30", "authenticate": "reset"}})
    with pytest.raises(requests.exceptions.ReadTimeout):
        _authz(emu.url, timeout=0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(emu.url + paths.authenticate_path(ACCOUNT), json={}, timeout=5)
    ledger = emu.ledger()["endpoints"]
    assert ledger["anonymous-authorize"]["faults"] == {"hang": 1}
    assert ledger["authenticate"]["faults"] == {"reset": 1}


def test_http_slow_and_latency_are_reported_apart(emu) -> None:
    emu.set_faults({"latency": {"anonymous-authorize": "50"}, "faults": {"csds": "slow:0.1"}})
    start = time.monotonic()
    assert _authz(emu.url).status_code == 200
    assert time.monotonic() - start >= 0.05
    assert requests.get(emu.url + paths.csds_path(ACCOUNT, "idp"), timeout=5).status_code == 200
    ledger = emu.ledger()["endpoints"]
    authz = ledger["anonymous-authorize"]
    assert authz["injected_delay_ms"]["max"] == 50.0 and authz["latency_ms"]["max"] >= 50.0
    assert authz["ok"] == 1 and authz["faults"] == {}
    csds = ledger["csds"]
    assert csds["ok"] == 1 and csds["faults"] == {"slow": 1} and csds["injected_delay_ms"]["max"] == 100.0


# ---------------------------------------------------------------------- handshake + hold
@pytest.mark.parametrize("status", [401, 403, 500])
def test_handshake_rejected_by_fault(emu, status: int) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"connect": f"status:{status}"}})
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(ws_url(emu.url), header=[f"Authorization: jwt {token}"], timeout=5)
    assert info.value.status_code == status
    ledger = emu.ledger()
    assert ledger["sockets"]["rejected"] == 1 and ledger["endpoints"]["connect"]["faults"] == {"status": 1}


def test_handshake_reset(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"connect": "reset"}})
    with pytest.raises((ConnectionError, websocket.WebSocketException)):
        websocket.create_connection(ws_url(emu.url), header=[f"Authorization: jwt {token}"], timeout=5)


@pytest.mark.parametrize("code", [4401, 4407, 1011, 4000])
def test_hold_close_with_code(emu, code: int) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"hold": {"kind": "close", "code": code, "after": 0.1}}})
    client = Client(emu.url, token)
    assert client.wait_close()[0] == code
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["sockets"]["closed_by_server"] == {str(code): 1}
    assert ledger["endpoints"]["hold"]["faults"] == {"close": 1}


def test_hold_reset(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"hold": "reset,after=0.05"}})
    client = Client(emu.url, token)
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        client.ws.recv()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["sockets"]["reset"] == 1 and ledger["endpoints"]["hold"]["faults"] == {"reset": 1}


def test_pongs_withheld_by_hold_and_by_ping_fault(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"hold": "no_pong"}})
    client = Client(emu.url, token, timeout=0.3)
    client.ws.ping(b"1")
    with pytest.raises(websocket.WebSocketTimeoutException):
        client.ws.recv_data(control_frame=True)
    client.close()
    emu.set_faults({"faults": {"ping": "no_pong,p=1"}})
    other = Client(emu.url, token, timeout=0.3)
    other.ws.ping(b"2")
    with pytest.raises(websocket.WebSocketTimeoutException):
        other.ws.recv_data(control_frame=True)
    other.close()
    ledger = emu.ledger()
    assert ledger["pings"] == {"received": 2, "ponged": 0, "withheld": 2}
    assert ledger["endpoints"]["ping"]["faults"] == {"no_pong": 2}


def test_slow_pong(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"ping": "slow:0.1"}})
    client = Client(emu.url, token)
    start = time.monotonic()
    client.ws.ping(b"s")
    opcode, _ = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and time.monotonic() - start >= 0.1
    client.close()
    assert emu.ledger()["endpoints"]["ping"]["injected_delay_ms"]["max"] == 100.0


# ---------------------------------------------------------------------- frame faults
def test_frame_error_code(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"cm.ConsumerRequestConversation": "code:503,message=busy"}})
    client = Client(emu.url, token)
    resp = client.request("cm.ConsumerRequestConversation")
    assert resp["code"] == 503 and resp["body"] == "busy"
    client.close()
    stats = emu.ledger()["endpoints"]["cm.ConsumerRequestConversation"]
    assert stats["faults"] == {"code": 1} and stats["errors"] == {"503": 1}


def test_frame_malformed_and_truncated(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"GetClock": "malformed", "KeepAlive": "truncated"}})
    client = Client(emu.url, token)
    client.send("GetClock")
    with pytest.raises(ValueError):
        json.loads(client.ws.recv())
    client.send("KeepAlive")
    text = client.ws.recv()
    assert text.startswith('{"kind":"resp"')
    with pytest.raises(ValueError):
        json.loads(text)
    client.close()


def test_frame_slow_hang_close_reset(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"GetClock": "slow:0.15", "KeepAlive": "hang"}})
    client = Client(emu.url, token)
    client.send("KeepAlive")  # never answered
    start = time.monotonic()
    assert client.request("GetClock")["code"] == 200
    assert time.monotonic() - start >= 0.15
    emu.set_faults({"faults": {"GetClock": "close:4407"}})
    client.send("GetClock")
    assert client.wait_close()[0] == 4407
    emu.set_faults({"faults": {"GetClock": "reset"}})
    other = Client(emu.url, token)
    other.send("GetClock")
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        other.ws.recv()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    stats = ledger["endpoints"]["GetClock"]
    assert stats["faults"] == {"slow": 1, "close": 1, "reset": 1}
    assert ledger["endpoints"]["KeepAlive"]["faults"] == {"hang": 1}
    assert ledger["sockets"]["reset"] == 1 and ledger["sockets"]["closed_by_server"] == {"4407": 1}


def test_frame_latency_does_not_block_pings(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"latency": {"GetClock": {"fixed_ms": 200}}})
    client = Client(emu.url, token)
    client.send("GetClock")
    client.ws.ping(b"p")
    opcode, _ = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG  # the pong overtakes the delayed response
    assert client.recv_json()["type"] == "GetClockResponse"
    client.close()
    assert emu.ledger()["endpoints"]["GetClock"]["injected_delay_ms"]["p50"] == 200.0


def test_wildcard_faults_fit_each_target(emu) -> None:
    emu.set_faults({"faults": {"*": "status:502"}})
    assert _authz(emu.url).status_code == 502
    emu.set_faults({"faults": {"*": "code:502", "anonymous-authorize": []}})
    token = lp_token(emu.url)
    client = Client(emu.url, token)
    assert client.request("GetClock")["code"] == 502
    client.close()


# ---------------------------------------------------------------------- probabilities, seeds
def _count_statuses(url: str, n: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    with requests.Session() as s:
        for _ in range(n):
            status = s.post(url + AUTHZ, timeout=5).status_code
            counts[status] = counts.get(status, 0) + 1
    return counts


def test_probabilities_are_reproducible_with_a_seed(emulator) -> None:
    args = (
        "--seed",
        "42",
        "--fault",
        "anonymous-authorize=status:503,p=0.3",
        "--fault",
        "anonymous-authorize=status:429,p=0.2",
    )
    first = _count_statuses(emulator(*args).url, 60)
    second = _count_statuses(emulator(*args).url, 60)
    assert first == second
    assert set(first) == {200, 429, 503}
    zero = _count_statuses(emulator("--fault", "anonymous-authorize=status:503,p=0").url, 10)
    assert zero == {200: 10}


# ---------------------------------------------------------------------- configuration
def test_admin_faults_roundtrip_and_validation(emu) -> None:
    cfg = {
        "seed": 3,
        "latency": {"authenticate": "20+uniform:10", "GetClock": {"fixed_ms": 1, "dist": "lognormal", "jitter_ms": 2}},
        "faults": {"hold": [{"kind": "close", "code": 4407, "after": 30, "p": 0.2}, "reset,after=5,p=0.1"]},
    }
    answer = emu.set_faults(cfg)
    assert answer == emu.get_faults()
    assert answer["latency"]["authenticate"] == {"fixed_ms": 20.0, "dist": "uniform", "jitter_ms": 10.0}
    assert answer["faults"]["hold"][0] == {"kind": "close", "p": 0.2, "code": 4407, "after": 30.0}
    for bad, words in (
        ({"faults": {"authenticate": "explode"}}, "unknown fault kind"),
        ({"faults": {"authenticate": "code:500"}}, "does not apply"),
        ({"faults": {"connect": ["status:401,p=0.7", "reset,p=0.7"]}}, "add up"),
        ({"faults": {"hold": "close:999"}}, "cannot be sent"),
        ({"latency": {"GetClock": "5+gamma:3"}}, "unknown latency distribution"),
        ({"surprise": 1}, "unknown keys"),
    ):
        with pytest.raises(EmulatorError) as info:
            emu.set_faults(bad)
        assert "400" in str(info.value) and words in str(info.value)
    r = requests.put(emu.url + "/admin/faults", data=b"{oops", timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_config"
    assert emu.get_faults() == answer  # unchanged by the refused updates


def test_config_files_json_and_toml(emulator, tmp_path) -> None:
    js = tmp_path / "emu.json"
    js.write_text(json.dumps({"idle-timeout": 33, "seed": 9, "faults": {"csds": ["status:404"]}}))
    emu = emulator("--config", str(js), "--fault", "authenticate=status:500")
    faults = emu.get_faults()
    assert faults["seed"] == 9 and set(faults["faults"]) == {"csds", "authenticate"}
    assert requests.get(emu.url + paths.csds_path(ACCOUNT, "idp"), timeout=5).status_code == 404
    toml = tmp_path / "emu.toml"
    toml.write_text(
        'lp-token-lifetime = 77\n[latency]\nauthenticate = "5+normal:1"\n'
        '[[faults.hold]]\nkind = "close"\ncode = 4407\nafter = 30\np = 0.5\n'
    )
    emu = emulator("--config", str(toml))
    faults = emu.get_faults()
    assert faults["latency"]["authenticate"]["dist"] == "normal"
    assert faults["faults"]["hold"][0]["code"] == 4407
    lp = lp_token(emu.url)
    from harness.protocol import tokens

    claims = tokens.unverified_claims(lp)
    assert claims["exp"] - claims["iat"] == 77


@pytest.mark.parametrize(
    "args",
    [
        ["--fault", "authenticate=explode"],
        ["--latency", "GetClock"],
        ["--fault", "hold=status:500"],
        ["--key-bits", "999"],
        ["--idle-timeout", "0"],
        ["--trust-key", "/no/such/file.pem"],
        ["--config", "/no/such/config.toml"],
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.emulator", "--port", "0", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_help_via_console_entry(capsys) -> None:
    from harness.cli import main

    with pytest.raises(SystemExit) as info:
        main(["emulator", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--account",
        "--key-bits",
        "--anon-token-lifetime",
        "--lp-token-lifetime",
        "--idle-timeout",
        "--trust-key",
        "--tls",
        "--config",
        "--latency",
        "--fault",
        "--processes",
        "--log-level",
        "--seed",
        "examples:",
        "fault syntax",
        "latency syntax",
    ):
        assert option in text


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "harness.emulator", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1 and "error:" in result.stderr and "Traceback" not in result.stderr
