"""Every request the emulator reads ends in exactly one ledger outcome (``ledger.unaccounted``).

A request whose peer left before its delayed answer was due is ``gone``: without it such a
request ended in none of the outcomes (``received`` was more than ``ok`` + ``errors`` + the
unanswered faults), so the ledger could not be balanced after a run where clients gave up on slow
answers. Each medium is tried once: an HTTP call, a handshake, a frame and a ping, each delayed by
a fault or by latency, with the client gone first. And a socket reset by a frame's fault, with a
hold fault drawn but not fired yet, ends its hold ``ok`` (it was in neither counter).
"""

from __future__ import annotations

import socket
import time

import pytest
import requests
import websocket

from harness.emulator.ledger import unaccounted
from harness.protocol import paths
from tests.emulator.helpers import ACCOUNT, Client, lp_token, ws_url

AUTHZ = paths.anonymous_authorize_path(ACCOUNT)


def _balanced(ledger: dict, target: str) -> bool:
    entry = ledger["endpoints"].get(target)
    return entry is not None and unaccounted(entry) == 0


@pytest.mark.parametrize(
    "delay", [{"faults": {"anonymous-authorize": "slow:0.5"}}, {"latency": {"anonymous-authorize": 500}}]
)
def test_an_http_call_given_up_on(emu, delay: dict) -> None:
    emu.set_faults(delay)
    with pytest.raises(requests.Timeout):
        requests.post(emu.url + AUTHZ, timeout=0.1)
    ledger = emu.wait_until(lambda led: _balanced(led, "anonymous-authorize"))
    entry = ledger["endpoints"]["anonymous-authorize"]
    assert (entry["received"], entry["ok"], entry["gone"]) == (1, 0, 1), entry


def test_a_handshake_given_up_on(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"connect": "slow:0.5"}})
    with pytest.raises((websocket.WebSocketTimeoutException, socket.timeout)):
        websocket.create_connection(ws_url(emu.url), header=[f"Authorization: jwt {token}"], timeout=0.1)
    ledger = emu.wait_until(lambda led: _balanced(led, "connect"))
    entry = ledger["endpoints"]["connect"]
    assert (entry["received"], entry["ok"], entry["gone"]) == (1, 0, 1), entry
    assert ledger["sockets"]["accepted"] == 0


@pytest.mark.parametrize("delay", [{"faults": {"GetClock": "slow:0.5"}}, {"latency": {"GetClock": 500}}])
def test_a_frame_whose_socket_closed_first(emu, delay: dict) -> None:
    token = lp_token(emu.url)
    emu.set_faults(delay)
    client = Client(emu.url, token)
    client.send("GetClock")
    client.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0 and _balanced(led, "GetClock"))
    entry = ledger["endpoints"]["GetClock"]
    assert (entry["received"], entry["ok"], entry["gone"]) == (1, 0, 1), entry


def test_a_ping_whose_socket_closed_first(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"ping": "slow:0.5"}})
    client = Client(emu.url, token)
    client.ws.ping(b"p")
    time.sleep(0.05)  # the ping is read before the close: it arrives first on the same connection
    client.close()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0 and _balanced(led, "ping"))
    entry = ledger["endpoints"]["ping"]
    assert (entry["received"], entry["ok"], entry["gone"]) == (1, 0, 1), entry
    assert ledger["pings"] == {"received": 1, "ponged": 0, "withheld": 0}


def test_an_answer_in_time_is_not_gone(emu) -> None:
    emu.set_faults({"faults": {"anonymous-authorize": "slow:0.05"}})
    assert requests.post(emu.url + AUTHZ, timeout=5).status_code == 200
    entry = emu.ledger()["endpoints"]["anonymous-authorize"]
    assert (entry["ok"], entry["gone"], unaccounted(entry)) == (1, 0, 0), entry


def test_a_hold_ended_by_a_frame_reset_is_ok(emu) -> None:
    token = lp_token(emu.url)
    emu.set_faults({"faults": {"hold": "close:4401,after=30", "GetClock": "reset"}})
    client = Client(emu.url, token)
    client.send("GetClock")
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        client.ws.recv()
    ledger = emu.wait_until(lambda led: led["sockets"]["open"] == 0)
    hold = ledger["endpoints"]["hold"]
    assert (hold["received"], hold["ok"], hold["faults"], unaccounted(hold)) == (1, 1, {}, 0), hold
    assert ledger["sockets"]["reset"] == 1
