"""What the emulator keeps in memory is bounded by what is live, not by how long it has run.

A soak (bench/soak.py) found its RSS growing ~2 KB a session: every token it issued stayed in
its verifiers' caches. These check each thing the emulator holds per session against a bound:
token caches (a time window), consumers and their conversations (forgotten once closed and
disconnected, at most 20 closed kept per connected consumer).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from harness.emulator import fastsocket, runner
from harness.emulator.config import EmulatorConfig
from harness.emulator.launcher import EmulatorProcess
from harness.emulator.process import run_loop
from harness.emulator.state import MAX_CLOSED_KEPT
from harness.protocol import messages, paths
from harness.protocol import tokens as t
from tests.client.support import wait_for
from tests.emulator.helpers import ACCOUNT, Client, close_body, lp_token

REQUEST = messages.MessageType.REQUEST_CONVERSATION
UPDATE = messages.MessageType.UPDATE_CONVERSATION_FIELD


def test_token_cache_holds_the_last_keep_s_seconds_of_tokens() -> None:
    key = t.generate_signing_key()
    verifier = t.TokenVerifier([key.public_key], keep_s=60.0)
    start = time.time()
    issued = []
    for i in range(600):  # one token a second over ten minutes of issue times
        claims = t.anonymous_claims(ACCOUNT, start + i, 3600)
        token = key.signer.sign(claims)
        verifier.remember(token, claims, start + i)
        issued.append((token, claims))
    assert verifier.cached <= 61  # the last minute's, not all 600
    # One evicted long ago is still accepted: checked in full, then kept again.
    old, claims = issued[0]
    assert verifier.verify(old, ACCOUNT, start + 600)["sub"] == claims["sub"]
    assert verifier.cached <= 62


def test_token_cache_is_capped_in_entries_too() -> None:
    key = t.generate_signing_key()
    verifier = t.TokenVerifier([key.public_key], cache_size=50, keep_s=3600.0)
    now = time.time()
    for _ in range(120):
        claims = t.anonymous_claims(ACCOUNT, now, 600)
        verifier.remember(key.signer.sign(claims), claims, now)
    assert verifier.cached == 50


def _held(emu: EmulatorProcess) -> dict[str, int]:
    return emu.health()["held"]


def _all_closed(emu: EmulatorProcess) -> bool:
    return emu.ledger()["sockets"]["open"] == 0


def _session(url: str) -> None:
    """One consumer's whole session: tokens, socket, a conversation opened and closed, socket closed."""
    client = Client(url, lp_token(url))
    conv = client.request(REQUEST)["body"]["conversationId"]
    assert client.request(UPDATE, close_body(conv))["code"] == 200
    client.close()


def test_sessions_leave_nothing_behind(emulator: Callable[..., EmulatorProcess]) -> None:
    emu = emulator("--token-cache-s", "1")
    for _ in range(25):
        _session(emu.url)
    wait_for(lambda: _all_closed(emu))
    held = _held(emu)
    assert (held["consumers"], held["conversations"]) == (0, 0)
    assert held["tokens_cached"] <= 50
    time.sleep(1.1)  # the cache window itself (--token-cache-s 1) has to pass: a time condition
    _session(emu.url)
    wait_for(lambda: _all_closed(emu))
    held = _held(emu)
    assert held == {"consumers": 0, "conversations": 0, "agent_conversations": 0, "tokens_cached": 2}  # its two tokens


def test_a_connected_consumer_keeps_at_most_20_closed_conversations(emu: EmulatorProcess) -> None:
    client = Client(emu.url, lp_token(emu.url))
    for _ in range(MAX_CLOSED_KEPT + 15):
        conv = client.request(REQUEST)["body"]["conversationId"]
        assert client.request(UPDATE, close_body(conv))["code"] == 200
    assert _held(emu)["conversations"] == MAX_CLOSED_KEPT
    client.close()
    wait_for(lambda: _all_closed(emu))
    assert _held(emu)["consumers"] == 0


def test_an_open_conversation_outlives_its_socket_until_it_is_closed(emu: EmulatorProcess) -> None:
    token = lp_token(emu.url)
    first = Client(emu.url, token)
    conv = first.request(REQUEST)["body"]["conversationId"]
    first.ws.abort()  # a dropped socket, no close frame
    first.ws.shutdown()
    wait_for(lambda: _all_closed(emu))
    assert _held(emu)["consumers"] == 1 and _held(emu)["conversations"] == 1  # the consumer's, as documented
    again = Client(emu.url, token)  # the same consumer comes back and closes it
    assert again.request(UPDATE, close_body(conv))["code"] == 200
    again.close()
    wait_for(lambda: _all_closed(emu))
    assert _held(emu)["consumers"] == 0 and _held(emu)["conversations"] == 0


async def _all_done(running: runner.RunningEmulator) -> None:
    while running.emulator.sockets.open or any(lane.ws is not None for lane in running.lanes):
        await asyncio.sleep(0.01)  # the server's side of the last close: polled, with a deadline above


async def _sessions_in_process(count: int) -> Counter[str]:
    """``count`` sessions against the real server in this loop; then what only the gc could free, by type."""
    running = await runner.start(EmulatorConfig())
    try:
        async with aiohttp.ClientSession() as http:
            gc.collect()
            gc.disable()  # nothing is collected behind the test's back: cyclic garbage stays to be counted
            try:
                for _ in range(count):
                    async with http.post(running.url + paths.anonymous_authorize_path(ACCOUNT)) as answer:
                        anonymous = (await answer.json())["jwt"]
                    async with http.post(running.url + paths.authenticate_path(ACCOUNT), json={"authCode": anonymous}) as answer:
                        lp = (await answer.json())["jwt"]
                    url = paths.socket_url(running.url, ACCOUNT)
                    async with http.ws_connect(url, headers={"Authorization": f"jwt {lp}"}) as ws:
                        await ws.send_str(json.dumps({"kind": "req", "id": 1, "type": REQUEST}))
                        await ws.receive()
                await asyncio.wait_for(_all_done(running), 5)
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                return Counter(type(o).__name__ for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    finally:
        await running.stop()


@pytest.mark.skipif(not fastsocket.available(), reason="the fast lane needs aiohttp 3.14's internals")
def test_a_closed_fast_lane_socket_is_freed_without_the_gc() -> None:
    garbage = run_loop(_sessions_in_process(20))
    assert (garbage["FastLane"], garbage["FastSocket"]) == (0, 0), garbage.most_common(8)
