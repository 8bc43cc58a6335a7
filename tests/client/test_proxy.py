"""Through an HTTP proxy: which proxy a URL takes, the CONNECT tunnel, and a real proxy carrying a run.

The choice is checked against requests' own reading of ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``;
the tunnel against scripted answers; then Debian's tinyproxy on loopback carries the client's
sockets (ws and wss), the IDP calls, and real headless ``locust`` runs, whose proxy log must
account for what the emulator's ledger saw. A proxy that refuses is one line naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from locust import argument_parser
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from harness.client import ConsumerSocket, ProxyError
from harness.client.idp import IdpClient
from harness.client.proxy import connect_request, http_session_options, parse_connect_answer, tunnel
from harness.client.transport import Route, use_route
from harness.options import add_arguments
from harness.protocol.messages import MessageType
from harness.settings import Settings, SettingsError
from harness.settings_network import choose_proxy, parse_proxy_url, redacted
from harness.user.discovery import discover
from harness.user.preflight import preflight
from tests.client.support import ACCOUNT, lp_token, ws_url
from tests.client.tinyproxy import Tinyproxy, dead_port, proxies
from tests.user.runs import run_locust

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
AUTH = ("BasicAuth alice s3cret",)
SHORT = [
    *("-u", "3", "-r", "30", "-t", "2s", "--stop-timeout", "5"),
    *("--lp-hold", "0.4", "--lp-ping-interval", "0.2", "--lp-think-time", "0.05"),
]


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which proxy variables it has: none of the machine's."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    yield from proxies(tmp_path)


@pytest.fixture
def route() -> Iterator[Callable[[Route], None]]:
    """``route(Route(...))`` makes it this process's for the test; the previous one comes back after."""
    previous: list[Route] = []

    def install(new: Route) -> None:
        previous.append(use_route(new))

    yield install
    if previous:
        use_route(previous[0])


# ---------------------------------------------------------------------------- which proxy
def test_the_environment_is_read_as_requests_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure.proxy:3128")
    monkeypatch.setenv("HTTP_PROXY", "plain.proxy:8080")  # no scheme: http, as requests reads it
    found = choose_proxy("wss://va.msg.liveperson.net/ws_api", "")
    assert found is not None and (found.where, found.origin) == ("secure.proxy:3128", "HTTPS_PROXY")
    plain = choose_proxy("ws://10.1.2.3:8080/ws_api", "")
    assert plain is not None and (plain.where, plain.origin) == ("plain.proxy:8080", "HTTP_PROXY")
    monkeypatch.setenv("https_proxy", "http://lower.proxy:1")  # the lowercase name wins, as in requests and curl
    lower = choose_proxy("https://va.idp.liveperson.net", "")
    assert lower is not None and (lower.where, lower.origin) == ("lower.proxy:1", "https_proxy")


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("va.msg.liveperson.net", "wss://va.msg.liveperson.net/x", True),  # the host
        ("liveperson.net", "wss://va.msg.liveperson.net/x", True),  # a domain, without a dot
        (".liveperson.net", "https://va.idp.liveperson.net", True),  # and with one
        ("example.com", "wss://va.msg.liveperson.net/x", False),
        ("10.0.0.0/8", "ws://10.1.2.3:8080/x", True),  # a CIDR
        ("10.1.2.3", "ws://10.1.2.3:8080/x", True),  # an IP
        ("192.168.0.0/16", "ws://10.1.2.3:8080/x", False),
        ("msg.example.com:8443", "wss://msg.example.com:8443/x", True),  # host:port
        ("msg.example.com:8443", "wss://msg.example.com/x", False),
        ("*", "wss://anything.example/x", True),
    ],
)
def test_no_proxy_matches_as_requests_matches(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, url: str, bypassed: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://p:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://p:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (choose_proxy(url, "") is None) is bypassed


def test_the_setting_overrides_the_environment_and_the_embedded_emulator_goes_direct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env.proxy:3128")
    monkeypatch.setenv("NO_PROXY", "liveperson.net")
    given = choose_proxy("wss://va.msg.liveperson.net/x", "http://given.proxy:8888")
    assert given is not None and (given.where, given.origin) == ("given.proxy:8888", "--lp-proxy/LP_PROXY")
    assert choose_proxy("wss://elsewhere.example/x", "none") is None
    assert choose_proxy("wss://elsewhere.example/x", "direct") is None
    monkeypatch.setenv("HTTP_PROXY", "http://env.proxy:3128")
    assert choose_proxy("ws://127.0.0.1:9/x", "", embedded=True) is None  # the environment's: not the emulator's
    explicit = choose_proxy("ws://127.0.0.1:9/x", "http://127.0.0.1:8888", embedded=True)
    assert explicit is not None and explicit.port == 8888  # an explicit one is


def test_proxy_urls_keep_their_password_out_of_sight() -> None:
    found = parse_proxy_url("http://al%40ce:p%3Ass@proxy.corp:3128")
    assert (found.username, found.password, found.where) == ("al@ce", "p:ss", "proxy.corp:3128")
    assert found.authorization == "Basic YWxAY2U6cDpzcw=="
    assert found.url == "http://al%40ce:p%3Ass@proxy.corp:3128"  # for requests, encoded again
    assert "p:ss" not in repr(found) and "p%3Ass" not in repr(found)
    assert redacted("http://alice:s3cret@proxy.corp:3128") == "http://alice:***@proxy.corp:3128"
    assert parse_proxy_url("proxy.corp").port == 80 and parse_proxy_url("[::1]:3128").where == "[::1]:3128"
    for bad in ("https://proxy:443", "socks5://proxy:1080", "http://:3128", "http://proxy:0", "http://p:3/path"):
        with pytest.raises(ValueError):
            parse_proxy_url(bad)


def parse(args: list[str]) -> Any:
    parser = argument_parser.get_parser()
    add_arguments(parser)
    return parser.parse_args(args)


def test_bad_proxy_settings_name_the_setting_not_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = ["--lp-account", "1", "--lp-idp", "https://idp.example", "--lp-asyncmessagingent", "https://msg.example"]
    with pytest.raises(SettingsError) as bad_flag:
        Settings.from_options(parse([*hosts, "--lp-proxy", "socks5://u:hunter2@proxy:1080"]))
    assert "--lp-proxy" in str(bad_flag.value) and "hunter2" not in str(bad_flag.value)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://u:hunter2@proxy:1080")
    with pytest.raises(SettingsError) as bad_env:
        Settings.from_options(parse(hosts))
    assert "HTTPS_PROXY" in str(bad_env.value) and "hunter2" not in str(bad_env.value)
    fine = Settings.from_options(parse([*hosts, "--lp-proxy", "http://u:hunter2@proxy:3128"]))  # overrides it
    assert fine.public()["proxy"] == "http://u:***@proxy:3128"
    assert Settings.from_options(parse([*hosts, "--lp-proxy", "Direct"])).proxy == "none"


# ---------------------------------------------------------------------------- the tunnel
class Scripted:
    """A socket whose peer answers ``answer`` once the request is sent."""

    def __init__(self, answer: bytes) -> None:
        self.answer, self.sent = [answer], b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, _size: int) -> bytes:
        return self.answer.pop(0) if self.answer else b""


def test_connect_request_and_answer() -> None:
    assert connect_request("va.msg.liveperson.net", 443, "Basic eA==") == (
        b"CONNECT va.msg.liveperson.net:443 HTTP/1.1\r\nHost: va.msg.liveperson.net:443\r\n"
        b"Proxy-Authorization: Basic eA==\r\n\r\n"
    )
    assert connect_request("::1", 80).startswith(b"CONNECT [::1]:80 HTTP/1.1\r\n")
    assert parse_connect_answer(b"HTTP/1.0 200 Connection established\r\nX: y\r\n\r\n") == (
        200,
        "Connection established",
    )
    assert parse_connect_answer(b"HTTP/1.1 407\r\n\r\n") == (407, "")
    for junk in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 no\r\n\r\n", b""):
        with pytest.raises(ValueError):
            parse_connect_answer(junk)


@pytest.mark.parametrize(
    ("answer", "category", "said"),
    [
        (b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n", "proxy 407", "http://user:password@proxy.corp:3128"),
        (b"HTTP/1.1 403 Access violation\r\n\r\n", "proxy 403", "does not allow CONNECT to msg.example:443"),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "proxy 502", "could not reach msg.example:443"),
        (b"", "proxy dropped", "closed the connection before answering"),
        (b"garbage\r\n\r\n", "proxy bad answer", "is it an HTTP proxy?"),
        (b"HTTP/1.1 200 OK\r\n\r\nearly", "proxy bad answer", "bytes past its answer"),
    ],
)
def test_a_refusing_proxy_is_one_line_naming_it(answer: bytes, category: str, said: str) -> None:
    proxy = parse_proxy_url("http://proxy.corp:3128")
    with pytest.raises(ProxyError) as caught:
        tunnel(Scripted(answer), proxy, "msg.example", 443)
    message = str(caught.value)
    assert caught.value.category == category and said in message and "proxy.corp:3128" in message, message
    assert "\n" not in message


def test_an_accepted_tunnel_sends_the_credentials() -> None:
    sock = Scripted(b"HTTP/1.1 200 Connection established\r\n\r\n")
    tunnel(sock, parse_proxy_url("http://alice:s3cret@proxy.corp:3128"), "msg.example", 443)
    assert b"Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n" in sock.sent


# ---------------------------------------------------------------------------- a real proxy: the client
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # lp_token of a self-signed emulator
@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_the_socket_goes_through_the_proxys_tunnel(emulator, tinyproxy, route, tls: bool) -> None:
    proxy = tinyproxy(*AUTH)
    emu = emulator(*(["--tls"] if tls else []))
    route(Route(proxy=proxy.url("alice:s3cret")))
    sock = ConsumerSocket.connect(ws_url(emu.url), lp_token(emu.url, verify=False), timeout=5, verify_tls=False)
    try:
        assert sock.request(MessageType.REQUEST_CONVERSATION, None, timeout=5).ok
        assert sock._sock.getpeername()[1] == proxy.port  # the TCP connection is the proxy's
    finally:
        sock.close()
    assert len(proxy.connects_to(int(emu.url.rsplit(":", 1)[1]))) == 1
    assert emu.ledger()["endpoints"]["connect"]["ok"] == 1


@pytest.mark.parametrize(
    ("config", "credentials", "category"),
    [(AUTH, "", "proxy 407"), (AUTH, "alice:wrong", "proxy 401"), (("ConnectPort 1",), "", "proxy 403")],
    ids=["no credentials", "wrong credentials", "port not allowed"],
)
def test_a_real_proxy_refusing_fails_the_connect_naming_it(
    emulator, tinyproxy, route, config: tuple[str, ...], credentials: str, category: str
) -> None:
    proxy = tinyproxy(*config)
    emu = emulator()
    route(Route(proxy=proxy.url(credentials)))
    with pytest.raises(ProxyError) as caught:
        ConsumerSocket.connect(ws_url(emu.url), "tok", timeout=5)
    assert caught.value.category == category and proxy.where in str(caught.value)
    assert "wrong" not in str(caught.value)
    assert "connect" not in emu.ledger()["endpoints"]


def test_a_proxy_that_cannot_reach_the_target_says_so(tinyproxy, route) -> None:
    proxy = tinyproxy()
    route(Route(proxy=proxy.url()))
    target = dead_port()
    with pytest.raises(ProxyError) as caught:
        ConsumerSocket.connect(f"ws://127.0.0.1:{target}/ws_api/account/1/messaging/consumer?v=3", "t", timeout=5)
    assert caught.value.category == "proxy 500"  # tinyproxy's "Unable to connect"
    assert f"could not reach 127.0.0.1:{target}" in str(caught.value) and proxy.where in str(caught.value)


def test_a_proxy_that_is_down_is_refused_by_name(route) -> None:
    port = dead_port()
    route(Route(proxy=f"http://u:hunter2@127.0.0.1:{port}"))
    with pytest.raises(ProxyError) as caught:
        ConsumerSocket.connect("wss://va.msg.liveperson.net/ws_api/account/1/messaging/consumer?v=3", "t", timeout=5)
    assert caught.value.category == "proxy refused"
    assert f"127.0.0.1:{port}" in str(caught.value) and "hunter2" not in str(caught.value)


def _idp(base: str, proxy_url: str) -> IdpClient:
    proxy = choose_proxy(base, proxy_url)
    session = FastHttpSession(
        base, request_event=EventHook(), user=None, insecure=True, max_retries=0, **http_session_options(proxy)
    )
    return IdpClient(session, ACCOUNT, proxy)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_the_idp_calls_go_through_the_proxy(emulator, tinyproxy, tls: bool) -> None:
    proxy = tinyproxy(*AUTH)
    emu = emulator(*(["--tls"] if tls else []))
    idp = _idp(emu.url, proxy.url("alice:s3cret"))
    assert idp.authenticate(idp.anonymous_authorize())
    lines = [line for _who, line in proxy.requests()]
    if tls:  # one tunnel, both calls inside it
        assert lines == [f"CONNECT {emu.url.split('://')[1]} HTTP/1.1"], lines
    else:  # a plain proxy reads each request whole
        assert [line.split()[0] for line in lines] == ["POST", "POST"] and emu.url in lines[0], lines
    with pytest.raises(ProxyError) as caught:
        _idp(emu.url, proxy.url()).anonymous_authorize()
    assert caught.value.category == "proxy 407" and proxy.where in str(caught.value)


def test_an_idp_call_to_a_proxy_that_is_down_is_refused_by_name() -> None:
    port = dead_port()
    with pytest.raises(ProxyError) as caught:
        _idp("https://va.idp.liveperson.net", f"http://u:hunter2@127.0.0.1:{port}").anonymous_authorize()
    assert caught.value.category == "proxy refused"
    assert f"127.0.0.1:{port}" in str(caught.value) and "hunter2" not in str(caught.value)


def test_csds_discovery_goes_through_the_proxy(emulator, tinyproxy) -> None:
    proxy, emu = tinyproxy(), emulator()
    assert discover(emu.url, "acme", proxy.url()) == (emu.url, emu.url)
    assert [line.split()[0] for _who, line in proxy.requests()] == ["GET", "GET"]
    assert emu.ledger()["endpoints"]["csds"]["received"] == 2
    with pytest.raises(SettingsError) as caught:
        discover(emu.url, "acme", f"http://127.0.0.1:{dead_port()}")
    assert "the proxy 127.0.0.1:" in str(caught.value) and "refused the lookup" in str(caught.value)


# ---------------------------------------------------------------------------- preflight and runs
def test_the_embedded_emulator_ignores_the_environments_proxy(emulator, monkeypatch, caplog) -> None:
    emu = emulator()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")  # would refuse everything
    settings = Settings(account=ACCOUNT, idp=emu.url, messaging=emu.url, target="emulator")
    with caplog.at_level("INFO", logger="lp-harness"):
        assert preflight(settings, authorize=False) == {}
    assert "HTTP_PROXY is not used for the embedded emulator" in caplog.text


def _balanced(summary: dict[str, Any], ledger: dict[str, Any]) -> None:
    """Every step the run counted is what the emulator received (plus the preflight's one authorize)."""
    assert summary["run"]["preflight"] == {"anonymous-authorize": {"sent": 1, "ok": 1}}
    for step, key in (("anonymous-authorize", "anonymous-authorize"), ("authenticate", "authenticate"),
                      ("connect", "connect"), ("close-conversation", "cm.UpdateConversationField")):  # fmt: skip
        sent = summary["steps"][step]["count"] + (step == "anonymous-authorize")
        assert sent == ledger["endpoints"][key]["received"] > 1, (
            step,
            summary["steps"][step],
            ledger["endpoints"][key],
        )
    assert summary["phases"]["token"]["failures"] == 0 and summary["phases"]["socket"]["failures"] == 0
    assert ledger["sockets"]["open"] == 0 and ledger["conversations"]["open"] == 0


def test_a_run_through_the_environments_http_proxy(emulator, tinyproxy, tmp_path: Path) -> None:
    """ws + http IDP through HTTP_PROXY, the sockets from --lp-source-addresses: all of it in the proxy's log."""
    proxy, emu = tinyproxy(), emulator()
    sources = ["--lp-source-addresses", "127.0.3.0/29"]
    run = run_locust([*SHORT, *sources], tmp_path / "reports", target=emu.url, env={"HTTP_PROXY": proxy.url()})
    assert run.returncode == 0, run.output[-3000:]
    summary, ledger = run.summary, emu.ledger()
    _balanced(summary, ledger)
    emu_port = int(emu.url.rsplit(":", 1)[1])
    sockets = proxy.connects_to(emu_port)
    assert len(sockets) == ledger["endpoints"]["connect"]["received"] + 2  # + the preflight's, one per host
    spread = sockets[2:]  # the preflight came first, from the default address
    assert set(spread) <= {f"127.0.3.{n}" for n in range(1, 7)} and len(set(spread)) >= 2, sockets
    posts = [line for _who, line in proxy.requests() if line.startswith(f"POST {emu.url}/")]
    token_calls = (
        ledger["endpoints"]["anonymous-authorize"]["received"] + ledger["endpoints"]["authenticate"]["received"]
    )
    assert len(posts) == token_calls, (len(posts), token_calls)


def test_a_wss_run_through_the_proxy_setting_over_the_environment(emulator, tinyproxy, tmp_path: Path) -> None:
    """wss + https IDP through --lp-proxy with credentials; the environment's dead proxy is overridden."""
    proxy, emu = tinyproxy(*AUTH), emulator("--tls")
    args = [*SHORT, "--lp-insecure", "--lp-proxy", proxy.url("alice:s3cret")]
    run = run_locust(args, tmp_path / "reports", target=emu.url, env={"HTTPS_PROXY": f"http://127.0.0.1:{dead_port()}"})
    assert run.returncode == 0, run.output[-3000:]
    summary, ledger = run.summary, emu.ledger()
    _balanced(summary, ledger)
    tunnels = proxy.connects_to(int(emu.url.rsplit(":", 1)[1]))
    # a tunnel for every socket, for every token phase that reached the IDP (its two calls share one),
    # and for the preflight's two connects and its one authorize
    authorizes = ledger["endpoints"]["anonymous-authorize"]["received"] - 1
    assert len(tunnels) >= ledger["endpoints"]["connect"]["received"] + authorizes + 3
    assert summary["run"]["settings"]["proxy"] == f"http://alice:***@{proxy.where}"
    assert "s3cret" not in run.output and "s3cret" not in (run.run_folder / "summary.json").read_text()


def test_a_refusing_proxy_ends_the_run_at_the_preflight(tinyproxy, tmp_path: Path) -> None:
    proxy = tinyproxy(*AUTH)
    run = run_locust([*SHORT, "--lp-proxy", proxy.url("alice:n0t-this")], tmp_path / "reports", timeout=60)
    assert run.returncode == 2, run.output[-3000:]
    assert "configuration error" in run.output and f"proxy {proxy.where} (--lp-proxy/LP_PROXY)" in run.output
    assert "refused the credentials" in run.output and "n0t-this" not in run.output and "Traceback" not in run.output
    assert all(line.startswith("CONNECT") for _who, line in proxy.requests())  # the preflight's, and no load
