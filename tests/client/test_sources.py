"""``--lp-source-addresses``: the sockets leave from the listed local addresses in turn, checked at start.

The emulator records no peer addresses, so the run's sockets reach it through a small relay in
this process that notes where each connection came from; the sockets' own ``getsockname`` says
the same for the client alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from gevent import socket as gsocket
from gevent.server import StreamServer

from harness.client import ConsumerSocket
from harness.client.sources import SourceAddresses
from harness.client.transport import Route, use_route
from harness.settings import SettingsError
from harness.settings_network import expand_sources, source_addresses
from tests.client.support import lp_token, ws_url
from tests.client.tinyproxy import dead_port
from tests.user.runs import run_locust

SHORT = ["-u", "3", "-r", "30", "-t", "2s", "--stop-timeout", "5", "--lp-hold", "0.4", "--lp-think-time", "0.05"]


class _Options:
    def __init__(self, value: str) -> None:
        self.lp_source_addresses = value


def test_lists_and_cidrs_expand_in_order_each_once() -> None:
    assert expand_sources("127.0.3.9, 127.0.3.0/30;127.0.3.9") == ("127.0.3.9", "127.0.3.1", "127.0.3.2")
    assert expand_sources("127.0.3.0/31") == ("127.0.3.0", "127.0.3.1")  # /31: both hold addresses
    assert expand_sources("::1") == ("::1",)
    assert len(expand_sources("127.0.0.0/20")) == 4094
    for bad, said in (
        ("127.0.3.1,nope", "'nope' is not an IP address"),
        ("10.0.0.0/8", "over 4096"),
        (" , ", "no address"),
    ):
        with pytest.raises(SettingsError) as caught:
            expand_sources(bad)
        assert said in str(caught.value) and "--lp-source-addresses" in str(caught.value)


def test_an_address_this_host_does_not_have_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LP_SOURCE_ADDRESSES", raising=False)
    assert source_addresses(_Options("127.0.3.0/29")) == tuple(f"127.0.3.{n}" for n in range(1, 7))
    assert source_addresses(_Options("")) == ()
    monkeypatch.setenv("LP_SOURCE_ADDRESSES", "127.0.3.5")  # a worker: the master named none, this host's own
    assert source_addresses(_Options("")) == ("127.0.3.5",)
    assert source_addresses(_Options("127.0.3.6")) == ("127.0.3.6",)  # one the master gave wins
    with pytest.raises(SettingsError) as caught:
        source_addresses(_Options("127.0.3.1,192.0.2.1"))  # TEST-NET-1: nobody's
    assert "192.0.2.1 cannot be used here (not an address of this host)" in str(caught.value)


@pytest.fixture
def sources_route() -> Iterator[None]:
    previous = use_route(Route(sources=SourceAddresses(["127.0.3.1", "127.0.3.2"], strict=True)))
    yield
    use_route(previous)


def test_the_sockets_leave_from_the_listed_addresses_in_turn(session, sources_route) -> None:
    _emu, url, token = session()
    socks = [ConsumerSocket.connect(url, token, timeout=5, ping_interval=None) for _ in range(3)]
    try:
        assert [s._sock.getsockname()[0] for s in socks] == ["127.0.3.1", "127.0.3.2", "127.0.3.1"]
        assert all(s.open for s in socks)
    finally:
        for s in socks:
            s.close()


def test_no_address_of_the_targets_family_fails_the_connect(emulator) -> None:
    emu = emulator()
    previous = use_route(Route(sources=SourceAddresses(["::1"], strict=True)))
    try:
        with pytest.raises(Exception) as caught:
            ConsumerSocket.connect(ws_url(emu.url), lp_token(emu.url), timeout=5)
    finally:
        use_route(previous)
    assert "no source address of the family of 127.0.0.1" in str(caught.value)


class Relay:
    """Forwards each connection to ``127.0.0.1:port``, noting the address it came from once it sends a byte."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.peers: list[str] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handle(self, client: gsocket.socket, address: tuple[str, int]) -> None:
        first = client.recv(65536)
        if not first:  # the preflight's reachability check: it connects and leaves
            client.close()
            return
        self.peers.append(address[0])
        upstream = gsocket.create_connection(("127.0.0.1", self.port))
        upstream.sendall(first)
        gevent.joinall([gevent.spawn(_pipe, client, upstream), gevent.spawn(_pipe, upstream, client)])
        client.close()
        upstream.close()


def _pipe(source: gsocket.socket, sink: gsocket.socket) -> None:
    """Copy until the source ends, then pass its end on (a FIN for a FIN: the close handshake needs it)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(gsocket.SHUT_WR)


def test_a_run_spreads_its_sockets_and_no_proxy_sends_it_direct(emulator, tmp_path: Path) -> None:
    """Through the relay, every socket came from the list; NO_PROXY (a CIDR) sent it past the dead HTTP_PROXY."""
    emu = emulator()
    relay = Relay(int(emu.url.rsplit(":", 1)[1]))
    env = {
        "LP_ASYNCMESSAGINGENT": relay.url,
        "HTTP_PROXY": f"http://127.0.0.1:{dead_port()}",
        "NO_PROXY": "127.0.0.0/8",
    }
    args = [*SHORT, "--lp-source-addresses", "127.0.4.1,127.0.3.0/30"]
    try:
        run = run_locust(args, tmp_path, target=emu.url, env=env)
    finally:
        relay.server.stop()
    assert run.returncode == 0, run.output[-3000:]
    connects = emu.ledger()["endpoints"]["connect"]["received"]
    assert run.summary["steps"]["connect"]["count"] == connects == len(relay.peers) > 3
    assert set(relay.peers) == {"127.0.4.1", "127.0.3.1", "127.0.3.2"}, relay.peers
    assert run.summary["run"]["settings"]["source_addresses"] == ["127.0.4.1", "127.0.3.1", "127.0.3.2"]


def test_a_foreign_source_address_ends_the_run_before_the_load(tmp_path: Path) -> None:
    run = run_locust([*SHORT, "--lp-source-addresses", "192.0.2.1"], tmp_path, timeout=60)
    assert run.returncode == 2, run.output[-3000:]
    assert "configuration error" in run.output and "192.0.2.1 cannot be used here" in run.output
    assert "Traceback" not in run.output
