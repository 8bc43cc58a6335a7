"""Ledger reconciliation, TLS, the tutorial's own commands, and running out of descriptors."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time

import pytest
import requests
import websocket

from harness.emulator.launcher import EmulatorProcess
from tests.emulator.helpers import ACCOUNT, Client, close_body, insecure_sslopt, lp_token


def test_ledger_counts_a_full_flow_exactly(emu) -> None:
    flows = 5
    for _ in range(flows):
        client = Client(emu.url, lp_token(emu.url))
        conv = client.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
        client.request("cm.UpdateConversationField", close_body(conv))
        client.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    ep = ledger["endpoints"]
    for key in (
        "anonymous-authorize",
        "authenticate",
        "connect",
        "cm.ConsumerRequestConversation",
        "cm.UpdateConversationField",
    ):
        assert ep[key]["received"] == ep[key]["ok"] == flows, key
        assert ep[key]["latency_ms"]["count"] == flows
        assert sum(ep[key]["histogram_ms"].values()) == flows
        lat = ep[key]["latency_ms"]
        assert 0 <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] and lat["max"] > 0
    assert ledger["sockets"]["accepted"] == flows and ledger["sockets"]["peak"] == 1
    assert ledger["sockets"]["closed_by_client"] == flows
    assert ledger["conversations"] == {"open": 0, "opened": flows, "closed": flows}
    emu.reset_ledger()
    fresh = emu.ledger()
    assert fresh["endpoints"] == {} and fresh["sockets"]["accepted"] == 0 and fresh["since"] >= ledger["since"]


def test_open_sockets_survive_a_reset_and_peak_is_tracked(emu) -> None:
    token = lp_token(emu.url)
    clients = [Client(emu.url, token) for _ in range(3)]
    assert emu.ledger()["sockets"]["open"] == 3
    emu.reset_ledger()
    ledger = emu.ledger()
    assert ledger["sockets"]["open"] == 3 and ledger["sockets"]["peak"] == 3
    for c in clients:
        c.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["sockets"]["closed_by_client"] == 3


def test_abrupt_client_drop_is_counted(emu) -> None:
    client = Client(emu.url, lp_token(emu.url))
    client.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.ws.sock.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    assert ledger["sockets"]["client_dropped"] == 1 and ledger["sockets"]["closed_by_client"] == 1


def test_health(emu) -> None:
    health = emu.health()
    assert health["ok"] is True and health["pid"] == emu.pid and health["url"] == emu.url


def test_tls_https_and_wss(emulator, tmp_path) -> None:
    emu = emulator("--tls", "--tls-dir", str(tmp_path))
    assert emu.url.startswith("https://127.0.0.1:")
    cert = tmp_path / "cert.pem"
    assert emu.health()["tls_cert"] == str(cert)
    # verified against the written certificate (it names 127.0.0.1)
    token = lp_token(emu.url, verify=str(cert))
    context = ssl.create_default_context(cafile=str(cert))
    client = Client(emu.url, token, sslopt={"context": context})
    assert client.request("cm.ConsumerRequestConversation")["code"] == 200
    client.close()
    insecure = Client(emu.url, token, sslopt=insecure_sslopt())
    assert insecure.request("GetClock")["code"] == 200
    insecure.close()
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(emu.url + "/admin/health", timeout=5)  # not trusted by default
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url.replace("https", "http") + "/admin/health", timeout=5)
    assert emu.ledger()["endpoints"]["connect"]["ok"] == 2


def test_tutorial_commands_replayed(emu) -> None:
    """The tutorial's curl | jq token calls, then a WebSocket client sending its request."""
    curl, jq = shutil.which("curl"), shutil.which("jq")
    if not curl or not jq:
        pytest.skip(f"needs curl and jq on PATH (curl={curl}, jq={jq})")
    env = {"LP_IDP": emu.url.split("://", 1)[1], "LP_ACCOUNT": ACCOUNT, "PATH": "/usr/bin:/bin"}
    env["PATH"] = f"{shutil.which('curl').rsplit('/', 1)[0]}:{shutil.which('jq').rsplit('/', 1)[0]}:/usr/bin:/bin"
    script = r"""
set -eu
UNAUTH_JWT=`curl -s -X POST -H "Content-Type: application/json" http://$LP_IDP/api/account/$LP_ACCOUNT/anonymous/authorize| jq -r .jwt`
LP_EXT_JWT=`curl -s -X POST -H "Content-Type: application/json" -d '{"authCode" : "'$UNAUTH_JWT'"}' http://$LP_IDP/api/account/$LP_ACCOUNT/authenticate | jq -r .jwt`
echo "$LP_EXT_JWT"
"""
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lp_jwt = result.stdout.strip()
    assert lp_jwt.count(".") == 2 and lp_jwt != "null"
    # wscat -H "Authorization:jwt $LP_AUTH_JWT" -c "wss://$LP_ASYNCMESSAGINGENT/ws_api/account/$LP_ACCOUNT/messaging/consumer?v=3"
    url = f"ws://{env['LP_IDP']}/ws_api/account/{ACCOUNT}/messaging/consumer?v=3"
    ws = websocket.create_connection(url, header=[f"Authorization:jwt {lp_jwt}"], timeout=5)
    ws.send('{"kind":"req","id":1,"type":"cm.ConsumerRequestConversation"}')
    resp = json.loads(ws.recv())
    assert resp["kind"] == "resp" and resp["reqId"] == "1" and resp["code"] == 200
    assert resp["type"] == "cm.RequestConversationResponse" and resp["body"]["conversationId"]
    ws.close()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_running_out_of_descriptors_is_logged_clearly(tmp_path) -> None:
    log_path = tmp_path / "emu.log"
    with log_path.open("wb") as log, EmulatorProcess(stderr=log, preexec_fn=_low_fd_limit) as emu:
        host, port = emu.url.split("://", 1)[1].split(":")
        held: list[socket.socket] = []
        try:
            for _ in range(80):
                s = socket.create_connection((host, int(port)), timeout=2)
                held.append(s)
            deadline = time.monotonic() + 5
            while b"OUT OF FILE DESCRIPTORS" not in log_path.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.05)  # the log file is the only signal there is
        finally:
            for s in held:
                s.close()
        text = log_path.read_text()
        assert "OUT OF FILE DESCRIPTORS" in text and "RLIMIT_NOFILE soft=64" in text
        ledger = emu.ledger()  # still serving once descriptors are free again
        assert ledger["sockets"]["accept_errors"] + ledger["sockets"]["fd_limit_hits"] >= 1


def test_processes_share_one_port_and_one_ledger(emulator) -> None:
    emu = emulator("--processes", "2", "--seed", "4")
    assert emu.health()["workers"] == 2
    flows = 12
    for _ in range(flows):  # tokens from one worker are valid on the other
        client = Client(emu.url, lp_token(emu.url))
        conv = client.request("cm.ConsumerRequestConversation")["body"]["conversationId"]
        client.request("cm.UpdateConversationField", close_body(conv))
        client.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0 and led["sockets"]["closed_by_client"] == flows)
    for key in ("anonymous-authorize", "authenticate", "connect", "cm.ConsumerRequestConversation"):
        assert ledger["endpoints"][key]["ok"] == flows and ledger["endpoints"][key]["latency_ms"]["count"] == flows
    assert ledger["conversations"] == {"open": 0, "opened": flows, "closed": flows}
    emu.set_faults({"faults": {"csds": "status:500"}})
    statuses = {
        requests.get(emu.url + "/api/account/a/service/idp/baseURI.json?version=1.0", timeout=5).status_code
        for _ in range(8)
    }
    assert statuses == {500} and emu.get_faults()["faults"]["csds"][0]["status"] == 500
    emu.reset_ledger()
    assert emu.ledger()["endpoints"] == {}
    assert emu.stop() == 0


def test_emulator_stops_when_its_launcher_dies_even_by_sigkill(tmp_path) -> None:
    """An embedded emulator must not outlive the load test that started it (the stdin lifeline)."""
    script = textwrap.dedent(
        """
        import sys, time
        from harness.emulator.launcher import EmulatorProcess
        emu = EmulatorProcess(sys.argv[1:]).start()
        print(emu.pid, flush=True)
        time.sleep(120)
        """
    )
    for extra in ([], ["--processes", "2"]):
        launcher = subprocess.Popen([sys.executable, "-c", script, *extra], stdout=subprocess.PIPE, text=True)
        try:
            emulator_pid = int(launcher.stdout.readline())
            launcher.kill()  # SIGKILL: no cleanup code runs in the launcher
            launcher.wait(10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(emulator_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)  # polling a PID's existence: there is no event to await
            else:
                raise AssertionError(f"emulator {emulator_pid} still running after its launcher died")
        finally:
            if launcher.poll() is None:
                launcher.kill()
