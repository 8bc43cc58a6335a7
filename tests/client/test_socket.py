"""ConsumerSocket against the real emulator on loopback: the flow, every failure type, pings, close.

Faults are injected with probability 1.0 so each test is deterministic; tests wait on events
(callbacks, wait_closed, the ledger) rather than sleeping.
"""

from __future__ import annotations

import gc
import socket
import ssl
import weakref

import gevent
import gevent.event
import gevent.pool
import pytest

from harness.client import (
    BadFrame,
    ClientError,
    CloseInfo,
    ConsumerSocket,
    Dropped,
    ErrorResponse,
    HandshakeRejected,
    PongTimeout,
    Refused,
    ServerClosed,
    Timeout,
    TlsError,
)
from harness.protocol import MessageType
from harness.protocol.messages import close_conversation_body
from tests.client.support import lp_token, wait_for, ws_url


def _endpoint(ledger: dict, key: str) -> dict:
    return ledger["endpoints"].get(key, {})


def test_full_flow_matches_the_ledger(session) -> None:
    emu, url, token = session()
    closes: list[CloseInfo] = []
    ws = ConsumerSocket.connect(url, token, timeout=5, on_close=closes.append)
    try:
        conv = ws.request(MessageType.REQUEST_CONVERSATION)
        assert conv.code == 200
        assert conv.type == MessageType.REQUEST_CONVERSATION_RESPONSE
        conversation_id = conv.body["conversationId"]
        clock = ws.request(MessageType.GET_CLOCK)
        assert clock.ok
        closed = ws.request(MessageType.UPDATE_CONVERSATION_FIELD, close_conversation_body(conversation_id))
        assert closed.ok
    finally:
        info = ws.close()
    assert info == CloseInfo("clean", 1000, info.reason)
    assert closes == [info]
    assert ws.wait_closed(0) is info

    ledger = wait_for(lambda: (lg := emu.ledger())["sockets"]["open"] == 0 and lg)
    for key in ("anonymous-authorize", "authenticate", "connect", MessageType.REQUEST_CONVERSATION,
                MessageType.GET_CLOCK, MessageType.UPDATE_CONVERSATION_FIELD):
        assert _endpoint(ledger, key).get("received") == 1, key
        assert _endpoint(ledger, key).get("ok") == 1, key
    assert ledger["sockets"]["accepted"] == 1
    assert ledger["sockets"]["closed_by_client"] == 1
    assert ledger["conversations"] == {**ledger["conversations"], "opened": 1, "closed": 1, "open": 0}


def test_handshake_rejected_with_a_bad_token(session) -> None:
    emu, url, _ = session()
    with pytest.raises(HandshakeRejected) as caught:
        ConsumerSocket.connect(url, "not.a.jwt", timeout=5)
    assert caught.value.status == 401
    assert caught.value.category == "handshake 401"
    assert emu.ledger()["sockets"]["open"] == 0


def test_refused_port() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(Refused) as caught:
        ConsumerSocket.connect(f"ws://127.0.0.1:{port}/ws_api/account/x/messaging/consumer?v=3", "t", timeout=5)
    assert caught.value.category == "refused"


def test_connect_timeout_on_a_hung_handshake(session) -> None:
    _, url, token = session("--fault", "connect=hang:30")
    with pytest.raises(Timeout) as caught:
        ConsumerSocket.connect(url, token, timeout=0.3)
    assert caught.value.category == "timeout"


def test_request_timeout_on_a_hung_request(session) -> None:
    _, url, token = session("--fault", "GetClock=hang:30")
    ws = ConsumerSocket.connect(url, token, timeout=5)
    try:
        with pytest.raises(Timeout) as caught:
            ws.request(MessageType.GET_CLOCK, timeout=0.3)
        assert caught.value.category == "timeout"
        assert ws.open  # a slow answer is not a dead socket
        assert ws.request(MessageType.REQUEST_CONVERSATION).ok
    finally:
        ws.close()


def test_error_response(session) -> None:
    _, url, token = session("--fault", "GetClock=code:503")
    ws = ConsumerSocket.connect(url, token, timeout=5)
    try:
        with pytest.raises(ErrorResponse) as caught:
            ws.request(MessageType.GET_CLOCK)
        assert caught.value.code == 503
        assert caught.value.category == "resp 503"
        assert caught.value.response.code == 503
        assert ws.open
    finally:
        ws.close()


def test_server_close_4401_during_the_hold(session) -> None:
    emu, url, token = session("--fault", "hold=close:4401,after=0.2")
    closes: list[CloseInfo] = []
    ws = ConsumerSocket.connect(url, token, timeout=5, on_close=closes.append)
    info = ws.wait_closed(5)
    assert info is not None
    assert (info.kind, info.code, info.category) == ("server", 4401, "close 4401")
    assert closes == [info]
    with pytest.raises(ServerClosed) as caught:
        ws.request(MessageType.GET_CLOCK)
    assert caught.value.category == "close 4401"
    assert ws.close() is info  # closing an ended socket reports how it ended
    ledger = wait_for(lambda: (lg := emu.ledger())["sockets"]["open"] == 0 and lg)
    assert ledger["sockets"]["closed_by_server"] == {"4401": 1}


def test_pending_request_fails_when_the_server_closes(session) -> None:
    _, url, token = session("--fault", "hold=close:4401,after=0.3", "--fault", "GetClock=hang:30")
    ws = ConsumerSocket.connect(url, token, timeout=5)
    with pytest.raises(ServerClosed) as caught:
        ws.request(MessageType.GET_CLOCK, timeout=10)
    assert caught.value.code == 4401


def test_abrupt_drop(session) -> None:
    _, url, token = session("--fault", "hold=reset,after=0.2")
    ws = ConsumerSocket.connect(url, token, timeout=5)
    info = ws.wait_closed(5)
    assert info is not None
    assert (info.kind, info.code, info.category) == ("dropped", 1006, "dropped")
    with pytest.raises(Dropped):
        ws.request(MessageType.GET_CLOCK)


def test_withheld_pong_is_a_pong_timeout_and_closes_the_socket(session) -> None:
    emu, url, token = session("--fault", "ping=no_pong")
    timed_out = gevent.event.Event()
    ws = ConsumerSocket.connect(url, token, timeout=5, ping_interval=0.1, pong_timeout=0.3,
                                on_pong_timeout=timed_out.set)
    assert timed_out.wait(5)
    info = ws.wait_closed(5)
    assert info is not None
    assert (info.kind, info.category) == ("pong timeout", "pong timeout")
    assert ws.pings_sent == 1 and ws.pongs_received == 0
    with pytest.raises(PongTimeout) as caught:
        ws.request(MessageType.GET_CLOCK)
    assert caught.value.category == "pong timeout"
    ledger = wait_for(lambda: (lg := emu.ledger())["sockets"]["open"] == 0 and lg)
    assert ledger["pings"]["withheld"] >= 1


def test_pong_round_trip_is_reported(session) -> None:
    emu, url, token = session()
    rtts: list[float] = []
    three = gevent.event.Event()

    def on_pong(rtt: float) -> None:
        rtts.append(rtt)
        if len(rtts) >= 3:
            three.set()

    ws = ConsumerSocket.connect(url, token, timeout=5, ping_interval=0.05, on_pong=on_pong)
    try:
        assert three.wait(5)
        assert all(0 < rtt < 1.0 for rtt in rtts)
        assert ws.last_rtt == rtts[-1]
        assert ws.pongs_received >= 3
    finally:
        ws.close()
    pings = emu.ledger()["pings"]
    assert pings["received"] >= 3 and pings["ponged"] >= 3


def test_slow_pong_moves_the_rtt(session) -> None:
    _, url, token = session("--fault", "ping=slow:0.2")
    got = gevent.event.AsyncResult()
    ws = ConsumerSocket.connect(url, token, timeout=5, ping_interval=0.05, pong_timeout=2, on_pong=got.set)
    try:
        rtt = got.get(timeout=5)
        assert 0.19 < rtt < 1.0
    finally:
        ws.close()


def test_malformed_response_frame(session) -> None:
    _, url, token = session("--fault", "GetClock=malformed")
    bad = []
    ws = ConsumerSocket.connect(url, token, timeout=5, on_bad_frame=bad.append)
    try:
        with pytest.raises(BadFrame) as caught:
            ws.request(MessageType.GET_CLOCK, timeout=5)
        assert caught.value.category == "bad json"
        assert ws.bad_frames == 1 and len(bad) == 1
        assert ws.open  # counted and reported, not fatal
        assert ws.request(MessageType.REQUEST_CONVERSATION).ok
    finally:
        ws.close()


def test_truncated_response_frame(session) -> None:
    _, url, token = session("--fault", "GetClock=truncated")
    ws = ConsumerSocket.connect(url, token, timeout=5)
    try:
        with pytest.raises(BadFrame):
            ws.request(MessageType.GET_CLOCK, timeout=5)
        assert ws.bad_frames == 1 and ws.open
    finally:
        ws.close()


def test_wait_closed_semantics(session) -> None:
    _, url, token = session()
    ws = ConsumerSocket.connect(url, token, timeout=5)
    assert ws.wait_closed(0.05) is None  # still open at the timeout
    assert ws.close_info is None and ws.open
    waiter = gevent.spawn(ws.wait_closed, 5)
    info = ws.close()
    assert waiter.get(timeout=5) is info
    assert info.kind == "clean" and info.category is None
    assert ws.wait_closed(0) is info
    assert ws.close() is info  # idempotent
    with pytest.raises(ClientError) as caught:
        ws.request(MessageType.GET_CLOCK)
    assert caught.value.category == "error SocketClosed"


def test_close_with_a_code(session) -> None:
    emu, url, token = session()
    ws = ConsumerSocket.connect(url, token, timeout=5)
    info = ws.close(code=1001)
    assert (info.kind, info.code) == ("clean", 1001)
    wait_for(lambda: emu.ledger()["sockets"]["closed_by_client"] == 1)


def test_send_is_untimed_and_its_response_is_dropped(session) -> None:
    emu, url, token = session()
    ws = ConsumerSocket.connect(url, token, timeout=5)
    try:
        req_id = ws.send(MessageType.GET_CLOCK)
        assert req_id == "1"
        assert ws.request(MessageType.GET_CLOCK).ok  # id 2; the response to id 1 went nowhere
        assert ws.late_responses == 0 and ws.bad_frames == 0
    finally:
        ws.close()
    assert emu.ledger()["endpoints"][MessageType.GET_CLOCK]["received"] == 2


def test_notifications_reach_the_handler(session) -> None:
    _, url, token = session()
    got = gevent.event.AsyncResult()
    ws = ConsumerSocket.connect(url, token, timeout=5, on_notification=got.set)
    try:
        ws.request(MessageType.SUBSCRIBE_EX_CONVERSATIONS, {"convState": ["OPEN", "CLOSE"]})
        ws.request(MessageType.REQUEST_CONVERSATION)
        note = got.get(timeout=5)
        assert note.type in (MessageType.EX_CONVERSATION_CHANGE_NOTIFICATION, "aam.ExConversationChangeNotification")
    finally:
        ws.close()


def test_pings_share_one_scheduler_greenlet(session) -> None:
    _, url, token = session()
    pongs = gevent.event.Event()
    count = [0]
    n = 40

    def on_pong(_rtt: float) -> None:
        count[0] += 1
        if count[0] >= 2 * n:
            pongs.set()

    before = sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)
    sockets = [ConsumerSocket.connect(url, token, timeout=5, ping_interval=0.05, on_pong=on_pong) for _ in range(n)]
    try:
        assert pongs.wait(10)
        alive = sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)
        assert alive - before <= n + 1  # one reader each, plus at most the one shared pinger
    finally:
        for ws in sockets:
            ws.close()


@pytest.mark.parametrize(
    ("end", "fault"), [("clean", "hold=close:4401,after=30"), ("server", "hold=close:4401,after=0.2"), ("dropped", "hold=reset,after=0.2")]
)
def test_a_finished_socket_is_freed_without_the_garbage_collector(session, end: str, fault: str) -> None:
    """No reference cycle outlives a session: a full collection would have to walk them all (harness/heap.py)."""
    _, url, token = session("--fault", fault)
    ws = ConsumerSocket.connect(url, token, timeout=5, ping_interval=0)  # the pinger lets go at its next tick
    if end == "clean":
        ws.request(MessageType.GET_CLOCK)
        ws.close()
    info = ws.wait_closed(5)
    assert info is not None and info.kind == end
    gevent.sleep(0)  # the reader greenlet finishes its way out
    gone = weakref.ref(ws)
    gc.disable()
    try:
        del ws
        assert gone() is None, "a closed ConsumerSocket is still referenced: a cycle only gc.collect() frees"
    finally:
        gc.enable()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verified_by_default_and_opt_out(emulator, tmp_path) -> None:
    emu = emulator("--tls", "--tls-dir", str(tmp_path))
    assert emu.url.startswith("https://")
    token = lp_token(emu.url, verify=False)
    url = ws_url(emu.url)
    assert url.startswith("wss://")
    with pytest.raises(TlsError) as caught:
        ConsumerSocket.connect(url, token, timeout=5)  # self-signed: verification fails
    assert caught.value.category == "tls"
    ws = ConsumerSocket.connect(url, token, timeout=5, verify_tls=False)
    try:
        assert ws.request(MessageType.GET_CLOCK).ok
    finally:
        assert ws.close().kind == "clean"
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))  # verify on, emulator's cert trusted
    ws = ConsumerSocket.connect(url, token, timeout=5, ssl_context=trusting, ping_interval=0.05)
    try:
        assert ws.request(MessageType.GET_CLOCK).ok
    finally:
        ws.close()


def test_handshake_rejected_with_an_injected_status(session) -> None:
    _, url, token = session("--fault", "connect=status:503")
    with pytest.raises(HandshakeRejected) as caught:
        ConsumerSocket.connect(url, token, timeout=5)
    assert caught.value.category == "handshake 503"


def test_bad_token_accepted_then_closed_4401(session) -> None:
    _, url, _ = session("--auth-failure", "close")
    ws = ConsumerSocket.connect(url, "not.a.jwt", timeout=5)
    info = ws.wait_closed(5)
    assert info is not None and (info.kind, info.code) == ("server", 4401)


def test_ended_sockets_do_not_pile_up_in_the_ping_scheduler(session) -> None:
    from harness.client.pinger import scheduler as _scheduler

    _, url, token = session()
    sched = _scheduler()
    before = len(sched)
    pool = gevent.pool.Pool(20)
    opened = pool.map(lambda _: ConsumerSocket.connect(url, token, timeout=5, ping_interval=60), range(300))
    assert len(sched) - before >= 300
    pool.map(lambda ws: ws.close(), opened)
    assert len(sched) - before < 100  # churn (sessions shorter than a ping interval) stays bounded
